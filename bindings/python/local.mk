# The CPython module hashmmap, a libtool module named as the
# interpreter expects (hashmmap.cpython-311-x86_64-linux-gnu.so), installed
# into $(pythondir).  Like the DNS shim it carries its own copy of the
# library (libhashmmap-dnscore.la: every symbol hidden), so it loads from
# the build tree with PYTHONPATH=bindings/python/.libs and needs no
# libhashmmap.so at run time; it exports only PyInit_hashmmap.
if HAVE_PYTHON
python_LTLIBRARIES = bindings/python/hashmmap.la
bindings_python_hashmmap_la_SOURCES = \
	%reldir%/pyhmm.h \
	%reldir%/module.c \
	%reldir%/map.c \
	%reldir%/methods.c \
	%reldir%/iter.c \
	%reldir%/convert.c
# Python's headers are not -Wstrict-prototypes / -Wshadow clean everywhere;
# our own files are.
bindings_python_hashmmap_la_CFLAGS = $(AM_CFLAGS) $(PYTHON_CFLAGS) -fvisibility=hidden -fno-strict-aliasing
bindings_python_hashmmap_la_LIBADD = libhashmmap-dnscore.la -lm
bindings_python_hashmmap_la_LDFLAGS = $(AM_LDFLAGS) -module -avoid-version -shared \
	-shrext $(PYTHON_EXT_SUFFIX) -export-symbols-regex '^PyInit_hashmmap$$'

endif
# Its unittest suites, run by tests/python.test.
EXTRA_DIST += %reldir%/tests/test_map.py %reldir%/tests/test_fork.py

# Python get/put latency against dict, dbm.gnu and sqlite3 (bench/README.md).
bench-python: $(python_LTLIBRARIES)
	PYTHONPATH=$(abs_top_builddir)/bindings/python/.libs $(PYTHON) $(srcdir)/bench/pybench.py
.PHONY: bench-python
EXTRA_DIST += bench/pybench.py
