# The SQLite extension: a libtool module hashmmap.so, loaded with
# `.load .../hashmmap` (entry point sqlite3_hashmmap_init), installed into
# $(libdir)/sqlite3.  It gets SQLite's functions from the program that loads
# it (sqlite3ext.h) and links libhashmmap, never libsqlite3.
if HAVE_SQLITE3_EXT
sqliteextdir = $(libdir)/sqlite3
sqliteext_LTLIBRARIES = hashmmap.la
hashmmap_la_SOURCES = %reldir%/vtab.h %reldir%/hashmmap_vtab.c %reldir%/stats_vtab.c %reldir%/options.c \
	%reldir%/mapopen.c %reldir%/incr.c %reldir%/keylist.c %reldir%/keylist.h %reldir%/readset.c %reldir%/readset.h \
	%reldir%/bytebuf.c %reldir%/bytebuf.h %reldir%/sqlkey.c %reldir%/sqlkey.h %reldir%/sqlvalue.c %reldir%/sqlvalue.h \
	tools/units.c tools/units.h tools/errtext.c tools/errtext.h tools/clock.h
hashmmap_la_CFLAGS = $(AM_CFLAGS) $(SQLITE3_CFLAGS) -fvisibility=hidden
hashmmap_la_LDFLAGS = $(AM_LDFLAGS) -module -avoid-version -shared
hashmmap_la_LIBADD = libhashmmap.la -lm

endif
