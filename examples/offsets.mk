# Committed offsets (issue 11): a simulated consumer group killed and resumed
# (driven by tests/test_offsets), and, with librdkafka, the same with a real
# Kafka consumer's rebalance callback (built, not run: it needs a broker).
check_PROGRAMS += examples/offset-consumer
examples_offset_consumer_SOURCES = %reldir%/offset_consumer.c
examples_offset_consumer_LDADD = libhashmmap.la

if HAVE_RDKAFKA
check_PROGRAMS += examples/kafka-consumer
examples_kafka_consumer_SOURCES = %reldir%/kafka_consumer.c
examples_kafka_consumer_CFLAGS = $(AM_CFLAGS) $(RDKAFKA_CFLAGS)
examples_kafka_consumer_LDADD = libhashmmap.la $(RDKAFKA_LIBS)
endif

if HAVE_CMOCKA
check_PROGRAMS += tests/test_offsets
TESTS += tests/test_offsets
tests_test_offsets_SOURCES = tests/test_offsets.c
tests_test_offsets_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
tests_test_offsets_LDADD = tests/libtestutil.la libhashmmap.la $(CMOCKA_LIBS)
endif
