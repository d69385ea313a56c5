# hashmmap-replicate: the replication daemon (docs/PROTOCOL.md), built when
# configure found OpenSSL (libssl, libcrypto).
if HAVE_OPENSSL
bin_PROGRAMS += hashmmap-replicate
hashmmap_replicate_SOURCES = %reldir%/hashmmap-replicate.c %reldir%/repl.h \
	%reldir%/repl_frame.c %reldir%/repl_frame.h %reldir%/repl_keyset.c %reldir%/repl_keyset.h \
	%reldir%/repl_sync.c %reldir%/repl_sync.h \
	%reldir%/repl_auth.c %reldir%/repl_conn.c %reldir%/repl_log.c \
	%reldir%/repl_primary.c %reldir%/repl_promote.c %reldir%/repl_replica.c \
	tools/open_regular.c tools/open_regular.h tools/bus_error.c tools/bus_error.h \
	tools/errtext.c tools/errtext.h tools/clock.h
hashmmap_replicate_CFLAGS = $(AM_CFLAGS) $(OPENSSL_CFLAGS)
hashmmap_replicate_LDADD = libhashmmap.la $(OPENSSL_LIBS) $(JEMALLOC_LIBS)
dist_man_MANS += tools/hashmmap-replicate.1
endif
EXTRA_DIST += tools/hashmmap-replicate.service
