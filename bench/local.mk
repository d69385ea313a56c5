# Benchmarks: never part of `make check` (a benchmark must not fail
# a build on a slow machine).  See bench/README.md.
#   make bench             build bench/hmmbench, run it, write bench/results.csv and bench/results.png,
#                          then the instruction counts of bench-callgrind (when valgrind is installed)
#   make bench-quick       the same, short (HMMBENCH_QUICK=1): a smoke check, no instruction counts
#   make bench-callgrind   instructions per get, batched get (per key) and put (valgrind --tool=callgrind)
#   make bench-hitratio    cache mode's hit ratio against LRU and SIEVE (bench/hitratio.csv)
#   make bench-fill        how full a map is at its first HMM_FULL, by map size and value sizes
EXTRA_PROGRAMS += bench/hmmbench
bench_hmmbench_SOURCES = \
	%reldir%/hmmbench.c \
	%reldir%/hmmbench.h \
	%reldir%/store_local.c \
	%reldir%/store_inline.c \
	%reldir%/store_hmm.c \
	%reldir%/store_db.c \
	%reldir%/store_kvfile.c \
	%reldir%/store_net.c \
	%reldir%/footprint.c
bench_hmmbench_CFLAGS = $(AM_CFLAGS) $(SQLITE3_CFLAGS) $(HIREDIS_CFLAGS) $(LIBMEMCACHED_CFLAGS) \
	$(KYOTOCABINET_CFLAGS)
bench_hmmbench_LDADD = libhashmmap.la $(LMDB_LIBS) $(SQLITE3_LIBS) $(HIREDIS_LIBS) $(LIBMEMCACHED_LIBS) \
	$(KYOTOCABINET_LIBS) $(TKRZW_LIBS) $(JEMALLOC_LIBS) -lm
bench_hmmbench_LDFLAGS = $(AM_LDFLAGS) -no-install
# A whole process of puts, for an A/B of two builds with farm-bench (README).
EXTRA_PROGRAMS += bench/put_overwrites
bench_put_overwrites_SOURCES = %reldir%/put_overwrites.c
bench_put_overwrites_LDADD = libhashmmap.la
bench_put_overwrites_LDFLAGS = $(AM_LDFLAGS) -no-install
CLEANFILES += bench/put_overwrites
# The same for gets (bench/README.md, "get, by part (fifth stop)").
EXTRA_PROGRAMS += bench/get_loop
bench_get_loop_SOURCES = %reldir%/get_loop.c
bench_get_loop_LDADD = libhashmmap.la
bench_get_loop_LDFLAGS = $(AM_LDFLAGS) -no-install
CLEANFILES += bench/get_loop
EXTRA_DIST += %reldir%/README.md %reldir%/plot.gp %reldir%/results-2026-11-25.png %reldir%/put_parts.py \
	%reldir%/get_parts.py
CLEANFILES += bench/hmmbench bench/results.csv bench/results.png bench/callgrind.out.*

HMMBENCH_PLOT = if command -v gnuplot >/dev/null 2>&1; then \
	  gnuplot -e "csv='bench/results.csv'; png='bench/results.png'" $(srcdir)/bench/plot.gp \
	    && echo "plot: bench/results.png"; \
	else echo "gnuplot not installed (apt-get install gnuplot-nox): no bench/results.png"; fi

bench: bench/hmmbench bench/hitratio
	$(builddir)/bench/hmmbench
	@$(HMMBENCH_PLOT)
	$(builddir)/bench/hitratio | tee bench/hitratio.csv
	@if command -v valgrind >/dev/null; then $(MAKE) $(AM_MAKEFLAGS) bench-callgrind; \
	else echo "valgrind not installed (apt-get install valgrind): no instruction counts"; fi

bench-quick: bench/hmmbench
	HMMBENCH_QUICK=1 $(builddir)/bench/hmmbench
	@$(HMMBENCH_PLOT)

# Instructions per operation: a run of 100 000 gets (batched gets, puts) on a
# prepared 100 000-key map, minus a run that prepares the same and does nothing;
# the local table counted the same way gives the ratio (mget against its get),
# and the same table with a robust mutex a put the floor of put's.
bench-callgrind: bench/hmmbench
	@command -v valgrind >/dev/null || { echo "valgrind not installed (apt-get install valgrind)"; exit 1; }
	@ir() { valgrind --tool=callgrind --callgrind-out-file=bench/callgrind.out.$$1 \
	          $(builddir)/bench/hmmbench --callgrind $$1 2>&1 | sed -n 's/.*refs: *//p' | tr -d ,; }; \
	base=$$(ir none); lbase=$$(ir none-local); \
	lget=$$(( ($$(ir get-local) - lbase) / 100000 )); lput=$$(( ($$(ir put-local) - lbase) / 100000 )); \
	ibase=$$(ir none-hmminline); \
	for op in get mget put get-hmminline mget-hmminline put-hmminline; do \
	  case $$op in *-hmminline) b=$$ibase;; *) b=$$base;; esac; \
	  n=$$(( ($$(ir $$op) - b) / 100000 )); \
	  case $$op in put*) l=$$lput;; *) l=$$lget;; esac; \
	  echo "$$op: $$n instructions per operation, $$(awk "BEGIN{printf \"%.2f\", $$n / $$l}")x the local" \
	       "table's $$l (callgrind Ir; annotate: callgrind_annotate bench/callgrind.out.$$op)"; \
	done; \
	n=$$(( ($$(ir put-locked) - $$(ir none-locked)) / 100000 )); \
	echo "put-locked: $$n instructions per operation, $$(awk "BEGIN{printf \"%.2f\", $$n / $$lput}")x the local" \
	     "table's $$lput: the same table with a robust mutex a put (store_local_locked, DESIGN.md section 4)"

.PHONY: bench bench-quick bench-callgrind

# ---- hit ratio of cache mode (bench/hitratio.c) ----
# Traces and reference policies live in bench/hitsim.c, shared with
# tests/test_evict_policy.c.
EXTRA_PROGRAMS += bench/hitratio
bench_hitratio_SOURCES = %reldir%/hitratio.c %reldir%/hitsim.c %reldir%/hitsim.h
bench_hitratio_LDADD = libhashmmap.la -lm
bench_hitratio_LDFLAGS = $(AM_LDFLAGS) -no-install
CLEANFILES += bench/hitratio bench/hitratio.csv bench/callgrind.out.cache-*

bench-hitratio: bench/hitratio
	$(builddir)/bench/hitratio | tee bench/hitratio.csv

# Instructions per get and per evicting put on a full cache-mode map.
bench-callgrind-cache: bench/hitratio
	@command -v valgrind >/dev/null || { echo "valgrind not installed (apt-get install valgrind)"; exit 1; }
	@ir() { valgrind --tool=callgrind --callgrind-out-file=bench/callgrind.out.cache-$$1 \
	          $(builddir)/bench/hitratio --callgrind $$1 2>&1 | sed -n 's/.*refs: *//p' | tr -d ,; }; \
	base=$$(ir none); \
	for op in get put; do \
	  echo "cache $$op: $$(( ($$(ir $$op) - base) / 100000 )) instructions per operation (callgrind Ir)"; \
	done
.PHONY: bench-hitratio bench-callgrind-cache
# ---- end of hit ratio ----

# ---- how full a map is when it says HMM_FULL (bench/fillratio.c) ----
EXTRA_PROGRAMS += bench/fillratio
bench_fillratio_SOURCES = %reldir%/fillratio.c
bench_fillratio_LDADD = libhashmmap.la
bench_fillratio_LDFLAGS = $(AM_LDFLAGS) -no-install
CLEANFILES += bench/fillratio

bench-fill: bench/fillratio
	$(builddir)/bench/fillratio
.PHONY: bench-fill

# ---- SQL point lookups (bench/sqlbench.c) ----
# make bench-sql: the hashmmap virtual table against a plain SQLite table.
if HAVE_SQLITE3_EXT
EXTRA_PROGRAMS += bench/sqlbench
bench_sqlbench_SOURCES = %reldir%/sqlbench.c
bench_sqlbench_CFLAGS = $(AM_CFLAGS) $(SQLITE3_CFLAGS)
bench_sqlbench_LDADD = libhashmmap.la $(SQLITE3_LIBS)
bench_sqlbench_LDFLAGS = $(AM_LDFLAGS) -no-install
bench-sql: bench/sqlbench hashmmap.la
	$(builddir)/bench/sqlbench $(builddir)/.libs/hashmmap
endif
CLEANFILES += bench/sqlbench
.PHONY: bench-sql
# ---- end of SQL point lookups ----

# ---- DNS cache shim latency (bench/dnsbench.c) ----
# make bench-dns: getaddrinfo through libc against the shim's warm cache.
EXTRA_PROGRAMS += bench/dnsbench
bench_dnsbench_SOURCES = %reldir%/dnsbench.c
bench_dnsbench_LDADD = -ldl
CLEANFILES += bench/dnsbench
bench-dns: bench/dnsbench libhashmmap-dnscache.la
	$(builddir)/bench/dnsbench $(builddir)/.libs/libhashmmap-dnscache.so localhost $$(hostname)
.PHONY: bench-dns
# ---- end of DNS cache shim latency ----

# ---- replication throughput and lag (bench/replbench.c) ----
# make bench-repl: a primary, two replicas and a replica of a replica on
# loopback under phases of sustained writes; bench/repl_lag.csv and .png.
if HAVE_OPENSSL
EXTRA_PROGRAMS += bench/replbench
bench_replbench_SOURCES = %reldir%/replbench.c
bench_replbench_LDADD = libhashmmap.la
bench_replbench_LDFLAGS = $(AM_LDFLAGS) -no-install
bench-repl: bench/replbench hashmmap-replicate tests/repl_writer
	$(SHELL) $(srcdir)/bench/replbench.sh $(abs_builddir) $(srcdir)
# make bench-repl-catchup: a replica catching up on about 575 000 records of
# log, timed, with its syncs, faults and CPU (bench/replcatchup.sh; an A/B of
# two builds: DAEMONS="old/hashmmap-replicate new/hashmmap-replicate").
bench-repl-catchup: hashmmap-replicate tests/repl_writer
	$(SHELL) $(srcdir)/bench/replcatchup.sh $(abs_builddir) $(DAEMONS)
endif
CLEANFILES += bench/replbench bench/repl_lag.csv bench/repl_lag.png
EXTRA_DIST += %reldir%/replbench.sh %reldir%/repl_plot.gp %reldir%/repl-lag-2026-12-02.png %reldir%/replcatchup.sh
.PHONY: bench-repl bench-repl-catchup
# ---- end of replication throughput and lag ----

# Every benchmark program built, none run (.ci/run checks that a build in the
# tree leaves only ignored files).
bench-programs: $(EXTRA_PROGRAMS)
.PHONY: bench-programs
