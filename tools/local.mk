bin_PROGRAMS += hashmmap
hashmmap_SOURCES = %reldir%/hashmmap.c
hashmmap_LDADD = libhashmmap.la $(JEMALLOC_LIBS)
dist_man_MANS += %reldir%/hashmmap.1
