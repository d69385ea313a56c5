# Every test of the tree is registered here: cmocka programs (multi-process
# and crash tests fork and SIGKILL for real, each under a watchdog) and shell
# tests of the tools, the examples, the DNS shim, the SQLite extension and the
# Python module.  What they test is built by the folder's own local.mk.
if HAVE_CMOCKA
noinst_LTLIBRARIES += tests/libtestutil.la
tests_libtestutil_la_SOURCES = %reldir%/testutil.c %reldir%/testutil.h
tests_libtestutil_la_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)

HMM_TEST_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
# --wrap: the programs' opens go through testutil.c, which makes their
# maps of format 2 when HMM_TEST_INLINE=1 (make check-inline).
HMM_TEST_WRAP = -Wl,--wrap=hmm_open -Wl,--wrap=hmm_open_anon
HMM_TEST_LIBS = tests/libtestutil.la libhashmmap.la $(CMOCKA_LIBS)
HMM_CRASH_TEST_LIBS = tests/libtestutil.la libhashmmap-crash.la $(CMOCKA_LIBS)

HMM_CMOCKA_TESTS = \
	tests/test_api \
	tests/test_multiproc \
	tests/test_pidns \
	tests/test_crash \
	tests/test_crashpoints \
	tests/test_torture \
	tests/test_corrupt \
	tests/test_growth \
	tests/test_metrics \
	tests/test_cache \
	tests/test_evict_policy \
	tests/test_prefork \
	tests/test_replog \
	tests/test_hardening \
	tests/test_hostile \
	tests/test_offsets \
	tests/test_fdpass \
	tests/test_inline \
	tests/test_units

check_PROGRAMS += $(HMM_CMOCKA_TESTS)
TESTS += $(HMM_CMOCKA_TESTS)

tests_test_inline_SOURCES = %reldir%/test_inline.c
tests_test_inline_CFLAGS = $(HMM_TEST_CFLAGS)
tests_test_inline_LDADD = $(HMM_TEST_LIBS)
tests_test_inline_LDFLAGS = $(HMM_TEST_WRAP)
tests_test_api_SOURCES = %reldir%/test_api.c
tests_test_api_CFLAGS = $(HMM_TEST_CFLAGS)
tests_test_api_LDADD = $(HMM_TEST_LIBS)
tests_test_api_LDFLAGS = $(HMM_TEST_WRAP)
tests_test_multiproc_SOURCES = %reldir%/test_multiproc.c
tests_test_multiproc_CFLAGS = $(HMM_TEST_CFLAGS)
tests_test_multiproc_LDADD = $(HMM_TEST_LIBS)
tests_test_multiproc_LDFLAGS = $(HMM_TEST_WRAP)
tests_test_pidns_SOURCES = %reldir%/test_pidns.c
tests_test_pidns_CFLAGS = $(HMM_TEST_CFLAGS)
tests_test_pidns_LDADD = $(HMM_CRASH_TEST_LIBS)
tests_test_pidns_LDFLAGS = $(HMM_TEST_WRAP)
tests_test_crash_SOURCES = %reldir%/test_crash.c
tests_test_crash_CFLAGS = $(HMM_TEST_CFLAGS)
tests_test_crash_LDADD = $(HMM_TEST_LIBS)
tests_test_crash_LDFLAGS = $(HMM_TEST_WRAP)
tests_test_crashpoints_SOURCES = %reldir%/test_crashpoints.c
tests_test_crashpoints_CFLAGS = $(HMM_TEST_CFLAGS)
tests_test_crashpoints_LDADD = $(HMM_CRASH_TEST_LIBS)
tests_test_crashpoints_LDFLAGS = $(HMM_TEST_WRAP)
# Every kind of writer killed at random and at crash points while readers,
# openers and a log follower check the invariants (links the crash seams).
tests_test_torture_SOURCES = %reldir%/test_torture.c
tests_test_torture_CFLAGS = $(HMM_TEST_CFLAGS)
tests_test_torture_LDADD = $(HMM_CRASH_TEST_LIBS) -lpthread
tests_test_torture_LDFLAGS = $(HMM_TEST_WRAP)
tests_test_corrupt_SOURCES = %reldir%/test_corrupt.c
tests_test_corrupt_CFLAGS = $(HMM_TEST_CFLAGS)
tests_test_corrupt_LDADD = $(HMM_TEST_LIBS)
tests_test_corrupt_LDFLAGS = $(HMM_TEST_WRAP)
tests_test_growth_SOURCES = %reldir%/test_growth.c
tests_test_growth_CFLAGS = $(HMM_TEST_CFLAGS)
tests_test_growth_LDADD = $(HMM_TEST_LIBS)
tests_test_growth_LDFLAGS = $(HMM_TEST_WRAP)
tests_test_metrics_SOURCES = %reldir%/test_metrics.c
tests_test_metrics_CFLAGS = $(HMM_TEST_CFLAGS)
tests_test_metrics_LDADD = $(HMM_TEST_LIBS)
tests_test_metrics_LDFLAGS = $(HMM_TEST_WRAP)
tests_test_cache_SOURCES = %reldir%/test_cache.c
tests_test_cache_CFLAGS = $(HMM_TEST_CFLAGS)
tests_test_cache_LDADD = $(HMM_TEST_LIBS)
tests_test_cache_LDFLAGS = $(HMM_TEST_WRAP)
# The traces and reference policies are the hit-ratio benchmark's (bench/hitratio.c).
tests_test_evict_policy_SOURCES = %reldir%/test_evict_policy.c bench/hitsim.c bench/hitsim.h
tests_test_evict_policy_CFLAGS = $(HMM_TEST_CFLAGS)
tests_test_evict_policy_LDADD = $(HMM_TEST_LIBS) -lm
tests_test_evict_policy_LDFLAGS = $(HMM_TEST_WRAP)
tests_test_prefork_SOURCES = %reldir%/test_prefork.c
tests_test_prefork_CFLAGS = $(HMM_TEST_CFLAGS)
tests_test_prefork_LDADD = $(HMM_TEST_LIBS)
tests_test_prefork_LDFLAGS = $(HMM_TEST_WRAP)
tests_test_replog_SOURCES = %reldir%/test_replog.c
tests_test_replog_CFLAGS = $(HMM_TEST_CFLAGS)
tests_test_replog_LDADD = $(HMM_TEST_LIBS)
tests_test_replog_LDFLAGS = $(HMM_TEST_WRAP)
tests_test_hardening_SOURCES = %reldir%/test_hardening.c
tests_test_hardening_CFLAGS = $(HMM_TEST_CFLAGS)
tests_test_hardening_LDADD = $(HMM_TEST_LIBS)
tests_test_hardening_LDFLAGS = $(HMM_TEST_WRAP)
tests_test_hostile_SOURCES = %reldir%/test_hostile.c
tests_test_hostile_CFLAGS = $(HMM_TEST_CFLAGS)
tests_test_hostile_LDADD = $(HMM_TEST_LIBS)
tests_test_hostile_LDFLAGS = $(HMM_TEST_WRAP)
# Drives examples/offset-consumer: a consumer group killed and resumed.
tests_test_offsets_SOURCES = %reldir%/test_offsets.c
tests_test_offsets_CFLAGS = $(HMM_TEST_CFLAGS)
tests_test_offsets_LDADD = $(HMM_TEST_LIBS)
tests_test_offsets_LDFLAGS = $(HMM_TEST_WRAP)
# Hands an anonymous map's descriptors to an exec'ed program.
tests_test_fdpass_SOURCES = %reldir%/test_fdpass.c
tests_test_fdpass_CFLAGS = $(HMM_TEST_CFLAGS)
tests_test_fdpass_LDADD = $(HMM_TEST_LIBS)
tests_test_fdpass_LDFLAGS = $(HMM_TEST_WRAP)

# Pure code tested alone, without the library: the DNS shim's codec (round
# trips, damaged values, the live-block set) and the replication frame parser
# (no OpenSSL needed).
check_PROGRAMS += tests/test_dnscache_codec tests/test_repl_frames
TESTS += tests/test_dnscache_codec tests/test_repl_frames
tests_test_dnscache_codec_SOURCES = %reldir%/test_dnscache_codec.c cache/dns/dnscache_codec.c \
	cache/dns/dnscache_codec.h
tests_test_dnscache_codec_CFLAGS = $(HMM_TEST_CFLAGS)
tests_test_dnscache_codec_LDADD = $(CMOCKA_LIBS)
tests_test_repl_frames_SOURCES = %reldir%/test_repl_frames.c tools/replicate/repl_frame.c
tests_test_repl_frames_CFLAGS = $(HMM_TEST_CFLAGS)
tests_test_repl_frames_LDADD = $(CMOCKA_LIBS)
# The one size/duration grammar of the tools and the SQLite extension.
tests_test_units_SOURCES = %reldir%/test_units.c tools/units.c tools/units.h
tests_test_units_CFLAGS = $(HMM_TEST_CFLAGS)
tests_test_units_LDADD = $(CMOCKA_LIBS)
endif

# The command-line tools end to end.
TESTS += tests/cli.test tests/badinput.test tests/tail.test tests/truncated.test
EXTRA_DIST += tests/cli.test tests/badinput.test tests/tail.test tests/truncated.test
EXTRA_DIST += tests/data/map-64k-pages.tar.gz

# examples/anon-share passes a map's descriptors over SCM_RIGHTS.
TESTS += tests/fdpass.test
EXTRA_DIST += tests/fdpass.test

# The DNS shim under getent(1) and tests/dnsprobe (forked workers, threads, a
# setuid copy).  dnsprobe links only libc: the setuid test copies it alone.
check_PROGRAMS += tests/dnsprobe
tests_dnsprobe_SOURCES = %reldir%/dnsprobe.c
tests_dnsprobe_LDADD = -lpthread -ldl
TESTS += tests/dnscache.test
EXTRA_DIST += tests/dnscache.test

# hashmmap-replicate between processes on loopback; tests/repl_writer writes
# through the library while it runs.
if HAVE_OPENSSL
check_PROGRAMS += tests/repl_writer
tests_repl_writer_SOURCES = %reldir%/repl_writer.c
tests_repl_writer_LDADD = libhashmmap.la
TESTS += tests/replicate.test
endif
EXTRA_DIST += tests/replicate.test tests/repl_fake_primary.py

# The SQLite extension from the sqlite3 shell and Python's sqlite3.
if HAVE_SQLITE3_EXT
TESTS += tests/sqlite.test
endif
EXTRA_DIST += tests/sqlite.test tests/sqlite_client.py tests/sql

# The Python module's unittest suites, and examples/gunicorn_cache.py under gunicorn.
if HAVE_PYTHON
TESTS += tests/python.test tests/gunicorn.test
endif
EXTRA_DIST += tests/python.test tests/gunicorn.test tests/gunicorn_check.py

# Fuzzing (clang's libFuzzer): a short bounded run in `make check`, long
# runs with `make fuzz`.  Torture: the SIGKILL test for minutes.
TESTS += tests/fuzz.test
EXTRA_DIST += tests/fuzz.test tests/fuzz/fuzz_map.c tests/fuzz/fuzz_jsonl.c tests/fuzz/fuzz_frames.c \
	tests/fuzz/corpus_map tests/fuzz/corpus_jsonl tests/fuzz/corpus_frames

fuzz:
	HMM_FUZZ_SECONDS=$${HMM_FUZZ_SECONDS:-600} srcdir=$(srcdir) builddir=$(abs_top_builddir) \
	  $(SHELL) $(srcdir)/tests/fuzz.test

torture: tests/test_crash tests/test_torture
	HMM_TORTURE_KILLS=$${HMM_TORTURE_KILLS:-5000} HMM_TORTURE_SECONDS=$${HMM_TORTURE_SECONDS:-300} \
	  $(builddir)/tests/test_crash
	HMM_TORTURE_CACHE=1 HMM_TORTURE_KILLS=$${HMM_TORTURE_KILLS:-5000} HMM_TORTURE_SECONDS=$${HMM_TORTURE_SECONDS:-300} \
	  $(builddir)/tests/test_crash
	HMM_TORTURE_SECONDS=$${HMM_TORTURE_MAP_SECONDS:-100} $(builddir)/tests/test_torture # per map, 3 maps

.PHONY: fuzz torture

# The unit tests under valgrind's memcheck (CI runs it in the plain build).
check-valgrind: tests/test_api
	@for t in test_api; do \
	  HMM_TEST_TIME_SCALE=20 $(LIBTOOL) --mode=execute valgrind -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite \
	    --trace-children=no $(builddir)/tests/$$t >tests/$$t.valgrind.log 2>&1 \
	    && echo "valgrind: $$t clean" || { echo "valgrind: $$t FAILED"; tail -n 40 tests/$$t.valgrind.log; exit 1; }; \
	done
.PHONY: check-valgrind

# House rules on the sources and the built library: only hmm_ names in
# libhashmmap.a, FORMAT.md numbered without gaps, no function in core/ or
# tools/ over 80 lines, one version (HMM_STYLE_ALLOW_LONG=1: long functions warn).
TESTS += tests/style.test
EXTRA_DIST += tests/style.test

# Prometheus names checked by promtool (skipped without promtool).
check_PROGRAMS += tests/repl_status
tests_repl_status_SOURCES = %reldir%/repl_status.c
tests_repl_status_LDADD = libhashmmap.la
TESTS += tests/prometheus.test
EXTRA_DIST += tests/prometheus.test

# The cmocka programs again, on maps of format 2 (HMM_INLINE; testutil.c).
check-inline:
	HMM_TEST_INLINE=1 $(MAKE) $(AM_MAKEFLAGS) check TESTS="$(HMM_CMOCKA_TESTS)"
.PHONY: check-inline
