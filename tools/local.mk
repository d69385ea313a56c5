bin_PROGRAMS += hashmmap-stat
hashmmap_stat_SOURCES = %reldir%/hashmmap-stat.c
hashmmap_stat_LDADD = libhashmmap.la $(JEMALLOC_LIBS)
dist_man_MANS += %reldir%/hashmmap-stat.1
