# hashmmap-replicate: the replication daemon (docs/PROTOCOL.md), built when
# configure found OpenSSL (libssl, libcrypto).
if HAVE_OPENSSL
bin_PROGRAMS += hashmmap-replicate
hashmmap_replicate_SOURCES = \
	%reldir%/replicate/hashmmap-replicate.c \
	%reldir%/open_regular.c %reldir%/open_regular.h \
	%reldir%/errtext.c %reldir%/errtext.h %reldir%/clock.h \
	%reldir%/replicate/repl.h \
	%reldir%/replicate/repl_frame.c %reldir%/replicate/repl_frame.h \
	%reldir%/replicate/repl_auth.c \
	%reldir%/replicate/repl_conn.c \
	%reldir%/replicate/repl_log.c \
	%reldir%/replicate/repl_keyset.c %reldir%/replicate/repl_keyset.h \
	%reldir%/replicate/repl_primary.c \
	%reldir%/replicate/repl_promote.c \
	%reldir%/replicate/repl_replica.c
hashmmap_replicate_CFLAGS = $(AM_CFLAGS) $(OPENSSL_CFLAGS)
hashmmap_replicate_LDADD = libhashmmap.la $(OPENSSL_LIBS) $(JEMALLOC_LIBS)
dist_man_MANS += %reldir%/hashmmap-replicate.1
TESTS += tests/replicate.test
check_PROGRAMS += tests/repl_writer
tests_repl_writer_SOURCES = tests/repl_writer.c
tests_repl_writer_LDADD = libhashmmap.la
endif
# The frame parser alone (pure code, no OpenSSL needed).
if HAVE_CMOCKA
check_PROGRAMS += tests/test_repl_frames
TESTS += tests/test_repl_frames
tests_test_repl_frames_SOURCES = tests/test_repl_frames.c %reldir%/replicate/repl_frame.c
tests_test_repl_frames_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
tests_test_repl_frames_LDADD = $(CMOCKA_LIBS)
endif
EXTRA_DIST += %reldir%/hashmmap-replicate.service tests/replicate.test tests/repl_fake_primary.py docs/PROTOCOL.md \
	tests/fuzz/fuzz_frames.c tests/fuzz/corpus_frames
