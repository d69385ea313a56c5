/*
 * sqlvalue.h - how the SQLite extension keeps an SQL value in a map entry
 * (docs/FORMAT.md, "SQL values"), and how it reads entries written by
 * anything else.  Internal to sqlite-vtab/.
 */
#ifndef HMM_SQLVALUE_H
#define HMM_SQLVALUE_H

#include <stddef.h>
#include <sqlite3ext.h>

/* Value tags of the extension (hmm_put_tagged).  Integers are stored as
 * HMM_TAG_COUNTER (decimal ASCII), the very form hmm_incr writes, so a
 * counter and an SQL integer are one thing. */
enum {
    SQLVALUE_TAG_REAL = 2, /* "%.17g" text: exact round trip, readable by the CLI */
    SQLVALUE_TAG_TEXT = 3, /* UTF-8 bytes */
    SQLVALUE_TAG_BLOB = 4, /* bytes */
    SQLVALUE_TAG_NULL = 5, /* no bytes */
};

/* An SQL value turned into the bytes and tag of an entry.  The bytes point
 * into the sqlite3_value (valid while it is) or into num. */
struct sqlvalue_bytes {
    const void *bytes;
    size_t len;
    unsigned tag;
    char num[32];
};

/* The bytes of v, a TEXT (as UTF-8) or a BLOB: never NULL ("" for an
 * empty blob, which SQLite hands over without a pointer). */
void sqlvalue_raw(sqlite3_value *v, int type, const void **bytes, size_t *len);

/* Encode v as a value.  Never fails: every SQL type has a form. */
void sqlvalue_encode(sqlite3_value *v, struct sqlvalue_bytes *out);

/* Set the result of ctx to the SQL value that bytes/tag hold.  Raw bytes
 * (tag 0, written by hmm_put) read as INTEGER when they are a decimal
 * int64 exactly as "%lld" prints it, else as TEXT when they are valid UTF-8
 * without NUL, else as BLOB; unknown tags read as BLOB. */
void sqlvalue_result(sqlite3_context *ctx, const void *bytes, size_t len, unsigned tag);

#endif
