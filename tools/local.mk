# Tools: one .c per tool, with its man page beside it; only the public header.
# Their end-to-end tests are registered in tests/local.mk.
bin_PROGRAMS += hashmmap hashmmap-stat hashmmap-tail
# What every tool shares: the size/duration grammar, error messages, the
# clock, and a readable end on SIGBUS from a mapped file.
HMM_TOOL_COMMON = %reldir%/units.c %reldir%/units.h %reldir%/errtext.c %reldir%/errtext.h %reldir%/clock.h \
	%reldir%/bus_error.c %reldir%/bus_error.h
hashmmap_SOURCES = %reldir%/hashmmap.c %reldir%/jsonl.c %reldir%/jsonl.h $(HMM_TOOL_COMMON)
hashmmap_LDADD = libhashmmap.la $(JEMALLOC_LIBS)
hashmmap_stat_SOURCES = %reldir%/hashmmap-stat.c $(HMM_TOOL_COMMON)
hashmmap_stat_LDADD = libhashmmap.la $(JEMALLOC_LIBS)
# hashmmap-tail keeps its position record in tail_state.c.
hashmmap_tail_SOURCES = %reldir%/hashmmap-tail.c %reldir%/tail_state.c %reldir%/tail_state.h \
	%reldir%/open_regular.c %reldir%/open_regular.h %reldir%/units.c %reldir%/units.h \
	%reldir%/errtext.c %reldir%/errtext.h
hashmmap_tail_LDADD = libhashmmap.la $(JEMALLOC_LIBS)
dist_man_MANS += %reldir%/hashmmap.1 %reldir%/hashmmap-stat.1 %reldir%/hashmmap-tail.1
