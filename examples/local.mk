# Examples: built with the tests (a test drives each), not installed.
check_PROGRAMS += examples/prefork-cache
examples_prefork_cache_SOURCES = %reldir%/prefork_cache.c
examples_prefork_cache_LDADD = libhashmmap.la
