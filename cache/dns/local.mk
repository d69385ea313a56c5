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
