/*
 * kafka_consumer.c - a librdkafka consumer that keeps its offsets in a
 * hashmmap map instead of Kafka's __consumer_offsets.
 *
 *     examples/kafka-consumer STATE_DIR BROKERS GROUP TOPIC...
 *     examples/kafka-consumer /var/lib/app/offsets localhost:9092 billing orders
 *
 * The rebalance callback assigns each partition at the offset committed in
 * the map (hmm_offset_get; the beginning when none), so a consumer killed
 * with SIGKILL resumes after the last record it processed and committed.
 * After processing a record the consumer commits offset + 1 (the next
 * record to read) with hmm_offset_commit, which never moves backwards: a
 * consumer that lost the partition in a rebalance and commits late cannot
 * undo the progress of the new owner.  Kafka's own auto-commit is off.
 * Built when librdkafka is installed (Debian: librdkafka-dev); running it
 * needs a broker.  Stop with Ctrl-C.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include <hashmmap.h>

static volatile sig_atomic_t stop_requested;
static hmm_t *offsets;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* Where to start partition tp: the committed offset, or the beginning. */
static void position_from_map(rd_kafka_topic_partition_t *tp)
{
    char key[512];
    size_t klen;
    uint64_t off;
    if (hmm_offset_key(key, sizeof key, tp->topic, tp->partition, &klen) == 0
        && hmm_offset_get(offsets, key, klen, &off) == 0)
        tp->offset = (int64_t)off;
    else
        tp->offset = RD_KAFKA_OFFSET_BEGINNING;
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    (void)opaque;
    int cooperative = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        for (int i = 0; i < parts->cnt; i++)
            position_from_map(&parts->elems[i]);
        if (cooperative) {
            rd_kafka_error_t *e = rd_kafka_incremental_assign(rk, parts);
            if (e)
                rd_kafka_error_destroy(e);
        } else {
            rd_kafka_assign(rk, parts);
        }
    } else {
        /* Revoked or lost: nothing to flush, every processed record is
         * already committed in the map. */
        if (cooperative) {
            rd_kafka_error_t *e = rd_kafka_incremental_unassign(rk, parts);
            if (e)
                rd_kafka_error_destroy(e);
        } else {
            rd_kafka_assign(rk, NULL);
        }
    }
}

/* The application's work; here: print the record. */
static void process_message(const rd_kafka_message_t *msg)
{
    printf("%s/%" PRId32 "@%" PRId64 ": %.*s\n", rd_kafka_topic_name(msg->rkt), msg->partition,
           msg->offset, (int)msg->len, (const char *)msg->payload);
}

static int commit_after(const rd_kafka_message_t *msg)
{
    char key[512];
    size_t klen;
    int rc = hmm_offset_key(key, sizeof key, rd_kafka_topic_name(msg->rkt), msg->partition, &klen);
    if (rc == 0)
        rc = hmm_offset_commit(offsets, key, klen, (uint64_t)msg->offset + 1, NULL);
    return rc;
}

int main(int argc, char **argv)
{
    char errstr[512];
    if (argc < 5) {
        fprintf(stderr, "usage: kafka-consumer STATE_DIR BROKERS GROUP TOPIC...\n");
        return 2;
    }
    int rc = hmm_open(&offsets, argv[1], NULL);
    if (rc) {
        fprintf(stderr, "kafka-consumer: %s: %s\n", argv[1], hmm_strerror(rc));
        return 3;
    }
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", argv[2], errstr, sizeof errstr)
            || rd_kafka_conf_set(conf, "group.id", argv[3], errstr, sizeof errstr)
            || rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof errstr)
            || rd_kafka_conf_set(conf, "enable.auto.offset.store", "false", errstr, sizeof errstr)) {
        fprintf(stderr, "kafka-consumer: %s\n", errstr);
        return 3;
    }
    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    if (!rk) {
        fprintf(stderr, "kafka-consumer: %s\n", errstr);
        return 3;
    }
    rd_kafka_poll_set_consumer(rk);

    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(argc - 4);
    for (int i = 4; i < argc; i++)
        rd_kafka_topic_partition_list_add(topics, argv[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (err) {
        fprintf(stderr, "kafka-consumer: subscribe: %s\n", rd_kafka_err2str(err));
        rd_kafka_destroy(rk);
        return 3;
    }

    signal(SIGINT, on_stop_signal);
    signal(SIGTERM, on_stop_signal);
    int code = 0;
    while (!stop_requested) {
        rd_kafka_message_t *msg = rd_kafka_consumer_poll(rk, 500);
        if (!msg)
            continue;
        if (msg->err) {
            if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                fprintf(stderr, "kafka-consumer: %s\n", rd_kafka_message_errstr(msg));
        } else {
            process_message(msg);
            if ((rc = commit_after(msg)) != 0) {
                fprintf(stderr, "kafka-consumer: commit: %s\n", hmm_strerror(rc));
                code = 3;
                stop_requested = 1;
            }
        }
        rd_kafka_message_destroy(msg);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    hmm_close(offsets);
    return code;
}
