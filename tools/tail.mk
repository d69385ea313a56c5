# hashmmap-tail (issue 11): one tool with its man page, its position record
# in tail_state.c, and its end-to-end test (compared with logtail2 when
# Debian's logtail package is installed).
bin_PROGRAMS += hashmmap-tail
hashmmap_tail_SOURCES = %reldir%/hashmmap-tail.c %reldir%/tail_state.c %reldir%/tail_state.h \
	%reldir%/open_regular.c %reldir%/open_regular.h \
	%reldir%/units.c %reldir%/units.h
hashmmap_tail_LDADD = libhashmmap.la $(JEMALLOC_LIBS)
dist_man_MANS += %reldir%/hashmmap-tail.1

TESTS += tests/tail.test
EXTRA_DIST += tests/tail.test
