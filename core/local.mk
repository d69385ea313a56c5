# The library.  libhashmmap-crash.la is the same code with the crash seams
# of docs/FORMAT.md armed (HMM_CRASHPOINTS), linked only by the crash tests.
include_HEADERS += include/hashmmap.h

HMM_CORE_SOURCES = \
	%reldir%/format.h \
	%reldir%/internal.h \
	%reldir%/lookup.h \
	%reldir%/crashpoint.h \
	%reldir%/crashpoint.c \
	%reldir%/errors.c \
	%reldir%/version.c \
	%reldir%/map.c \
	%reldir%/header.c \
	%reldir%/fileio.c \
	%reldir%/compact.c \
	%reldir%/proc.c \
	%reldir%/lock.c \
	%reldir%/slab.c \
	%reldir%/index.c \
	%reldir%/entry.c \
	%reldir%/read.c \
	%reldir%/update.c \
	%reldir%/recover.c \
	%reldir%/cursor.c \
	%reldir%/check.c \
	%reldir%/stat.c \
	%reldir%/sync.c \
	%reldir%/grow.c \
	%reldir%/metrics.c \
	%reldir%/replog.c \
	%reldir%/replog_read.c \
	%reldir%/repl_state.c \
	%reldir%/offset.c \
	cache/evict.c

lib_LTLIBRARIES += libhashmmap.la
libhashmmap_la_SOURCES = $(HMM_CORE_SOURCES)
libhashmmap_la_CPPFLAGS = $(AM_CPPFLAGS) -DHMM_BUILDING_LIBRARY
libhashmmap_la_CFLAGS = $(AM_CFLAGS) -fvisibility=hidden
libhashmmap_la_LIBADD =
# current:revision:age, see the libtool manual before changing.
libhashmmap_la_LDFLAGS = $(AM_LDFLAGS) -version-info 0:0:0

noinst_LTLIBRARIES += libhashmmap-crash.la
libhashmmap_crash_la_SOURCES = $(HMM_CORE_SOURCES)
libhashmmap_crash_la_CPPFLAGS = $(AM_CPPFLAGS) -DHMM_BUILDING_LIBRARY -DHMM_CRASHPOINTS
# Built as libhashmmap.la is, so the crash tests see the same exported names.
libhashmmap_crash_la_CFLAGS = $(AM_CFLAGS) -fvisibility=hidden
libhashmmap_crash_la_LIBADD =
