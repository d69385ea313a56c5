# Examples: built with the tests (a test drives each), not installed.
#   prefork-cache     a prefork server's workers share one anonymous map (tests/test_prefork)
#   offset-consumer   a simulated consumer group killed and resumed (tests/test_offsets)
#   kafka-consumer    the same with librdkafka's rebalance callback (built, not run: it needs a broker)
#   anon-share        an anonymous map passed to unrelated processes: hmm_fd, hmm_open_fd and
#                     SCM_RIGHTS (tests/fdpass.test)
check_PROGRAMS += examples/prefork-cache examples/offset-consumer examples/anon-share
examples_prefork_cache_SOURCES = %reldir%/prefork_cache.c
examples_prefork_cache_LDADD = libhashmmap.la
examples_offset_consumer_SOURCES = %reldir%/offset_consumer.c
examples_offset_consumer_LDADD = libhashmmap.la
examples_anon_share_SOURCES = %reldir%/anon_share.c
examples_anon_share_LDADD = libhashmmap.la

if HAVE_RDKAFKA
check_PROGRAMS += examples/kafka-consumer
examples_kafka_consumer_SOURCES = %reldir%/kafka_consumer.c
examples_kafka_consumer_CFLAGS = $(AM_CFLAGS) $(RDKAFKA_CFLAGS)
examples_kafka_consumer_LDADD = libhashmmap.la $(RDKAFKA_LIBS)
endif
EXTRA_DIST += %reldir%/demo.sh %reldir%/gunicorn_cache.py
