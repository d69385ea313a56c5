# Benchmarks: outside `make check` (a benchmark must never fail a build on a
# slow machine).  `make bench` builds and runs hmmbench; `make
# bench-callgrind` prints instruction counts per get and per put.
EXTRA_PROGRAMS += bench/hmmbench
bench_hmmbench_SOURCES = %reldir%/hmmbench.c
bench_hmmbench_LDADD = libhashmmap.la $(LMDB_LIBS) $(JEMALLOC_LIBS) -lm
bench_hmmbench_LDFLAGS = $(AM_LDFLAGS) -no-install
CLEANFILES += bench/hmmbench

bench: bench/hmmbench
	$(builddir)/bench/hmmbench

bench-callgrind: bench/hmmbench
	@for op in get put; do \
	  valgrind --tool=callgrind --callgrind-out-file=bench/callgrind.out.$$op \
	    $(builddir)/bench/hmmbench --callgrind $$op 2>&1 | sed -n "s/.*refs: *//p" | tr -d , >bench/ir.$$op; \
	  valgrind --tool=callgrind --callgrind-out-file=/dev/null \
	    $(builddir)/bench/hmmbench --callgrind none 2>&1 | sed -n "s/.*refs: *//p" | tr -d , >bench/ir.base; \
	  echo "$$op: $$(( ($$(cat bench/ir.$$op) - $$(cat bench/ir.base)) / 100000 )) instructions per operation"; \
	done; rm -f bench/ir.*

.PHONY: bench bench-callgrind
