# The LD_PRELOAD DNS cache shim: libhashmmap-dnscache.so, a libtool
# module installed to $(libdir).  It carries its own copy of the library
# (a convenience archive built with every symbol hidden), so it needs no
# libhashmmap.so at run time and exports only getaddrinfo and freeaddrinfo:
# a program that links libhashmmap itself never meets the shim's copy.
noinst_LTLIBRARIES += libhashmmap-dnscore.la
libhashmmap_dnscore_la_SOURCES = $(HMM_CORE_SOURCES)
libhashmmap_dnscore_la_CFLAGS = $(AM_CFLAGS) -fvisibility=hidden

lib_LTLIBRARIES += libhashmmap-dnscache.la
libhashmmap_dnscache_la_SOURCES = \
	%reldir%/dnscache.c \
	%reldir%/dnscache_codec.c \
	%reldir%/dnscache_codec.h
libhashmmap_dnscache_la_CFLAGS = $(AM_CFLAGS) -fvisibility=hidden
libhashmmap_dnscache_la_LIBADD = libhashmmap-dnscore.la -ldl
libhashmmap_dnscache_la_LDFLAGS = $(AM_LDFLAGS) -module -avoid-version -shared \
	-export-symbols-regex '^(getaddrinfo|freeaddrinfo)$$'

# tests/dnscache.test drives the shim under getent(1) and tests/dnsprobe
# (forked workers, threads, a setuid copy).  dnsprobe links only libc: the
# setuid test copies it alone.
check_PROGRAMS += tests/dnsprobe
tests_dnsprobe_SOURCES = tests/dnsprobe.c
tests_dnsprobe_LDADD = -lpthread -ldl
TESTS += tests/dnscache.test
EXTRA_DIST += tests/dnscache.test

# The codec alone (cmocka): round trips, damaged values, the live-block set.
if HAVE_CMOCKA
check_PROGRAMS += tests/test_dnscache_codec
TESTS += tests/test_dnscache_codec
tests_test_dnscache_codec_SOURCES = tests/test_dnscache_codec.c %reldir%/dnscache_codec.c \
	%reldir%/dnscache_codec.h
tests_test_dnscache_codec_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
tests_test_dnscache_codec_LDADD = $(CMOCKA_LIBS)
endif
