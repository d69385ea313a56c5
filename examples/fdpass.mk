# Passing an anonymous map to unrelated processes (issue 20): hmm_fd,
# hmm_open_fd and SCM_RIGHTS in examples/anon-share, driven by
# tests/fdpass.test; tests/test_fdpass hands the descriptors to an exec'ed
# program.
check_PROGRAMS += examples/anon-share
examples_anon_share_SOURCES = %reldir%/anon_share.c
examples_anon_share_LDADD = libhashmmap.la
TESTS += tests/fdpass.test
EXTRA_DIST += tests/fdpass.test

if HAVE_CMOCKA
check_PROGRAMS += tests/test_fdpass
TESTS += tests/test_fdpass
tests_test_fdpass_SOURCES = tests/test_fdpass.c
tests_test_fdpass_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
tests_test_fdpass_LDADD = tests/libtestutil.la libhashmmap.la $(CMOCKA_LIBS)
endif
