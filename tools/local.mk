# Tools: one .c per tool, with its man page beside it; only the public header.
bin_PROGRAMS += hashmmap hashmmap-stat
hashmmap_SOURCES = %reldir%/hashmmap.c %reldir%/jsonl.c %reldir%/jsonl.h
hashmmap_SOURCES += %reldir%/units.c %reldir%/units.h %reldir%/errtext.c %reldir%/errtext.h %reldir%/clock.h
hashmmap_LDADD = libhashmmap.la $(JEMALLOC_LIBS)
hashmmap_stat_SOURCES = %reldir%/hashmmap-stat.c
hashmmap_stat_SOURCES += %reldir%/errtext.c %reldir%/errtext.h %reldir%/clock.h %reldir%/units.c %reldir%/units.h
hashmmap_stat_LDADD = libhashmmap.la $(JEMALLOC_LIBS)
dist_man_MANS += %reldir%/hashmmap.1 %reldir%/hashmmap-stat.1

TESTS += tests/cli.test
EXTRA_DIST += tests/cli.test examples/demo.sh
TESTS += tests/badinput.test
EXTRA_DIST += tests/badinput.test
