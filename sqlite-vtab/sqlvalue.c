/*
 * sqlvalue.c - SQL values as tagged map values, and back (docs/FORMAT.md,
 * "SQL values").
 *
 * The encoding is chosen so that other clients of the map see something
 * sensible: integers and reals are decimal text (`hashmmap get` prints
 * them, hmm_incr counts on the integers), text is its UTF-8 bytes, and only
 * the tag tells SQL text "42" from SQL integer 42.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hashmmap.h>
#include "sqlite-vtab/sqlkey.h"
#include "sqlite-vtab/sqlvalue.h"

SQLITE_EXTENSION_INIT3

void sqlvalue_raw(sqlite3_value *v, int type, const void **bytes, size_t *len)
{
    /* The pointer first, then the length: SQLite's documented order. */
    const void *p = type == SQLITE_TEXT ? (const void *)sqlite3_value_text(v) : sqlite3_value_blob(v);
    *len = (size_t)sqlite3_value_bytes(v);
    *bytes = p ? p : "";
}

void sqlvalue_encode(sqlite3_value *v, struct sqlvalue_bytes *out)
{
    int type = sqlite3_value_type(v);
    switch (type) {
    case SQLITE_INTEGER:
        out->len = (size_t)snprintf(out->num, sizeof out->num, "%lld", sqlite3_value_int64(v));
        out->bytes = out->num;
        out->tag = HMM_TAG_COUNTER;
        return;
    case SQLITE_FLOAT:
        /* 17 significant digits give back the same double through strtod. */
        out->len = (size_t)snprintf(out->num, sizeof out->num, "%.17g", sqlite3_value_double(v));
        out->bytes = out->num;
        out->tag = SQLVALUE_TAG_REAL;
        return;
    case SQLITE_TEXT:
    case SQLITE_BLOB:
        sqlvalue_raw(v, type, &out->bytes, &out->len);
        out->tag = type == SQLITE_TEXT ? SQLVALUE_TAG_TEXT : SQLVALUE_TAG_BLOB;
        return;
    default:
        out->bytes = "";
        out->len = 0;
        out->tag = SQLVALUE_TAG_NULL;
        return;
    }
}

/* Numbers are short: copy one into buf (32 bytes) as a C string, or say
 * it cannot be one. */
static bool number_cstr(const void *bytes, size_t len, char buf[32])
{
    if (len == 0 || len >= 32)
        return false;
    memcpy(buf, bytes, len);
    buf[len] = '\0';
    return true;
}

/* Parse decimal text; false when it is not entirely such a number. */
static bool parse_int64(const void *bytes, size_t len, sqlite3_int64 *out)
{
    char buf[32], *end;
    if (!number_cstr(bytes, len, buf))
        return false;
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

static bool parse_double(const void *bytes, size_t len, double *out)
{
    char buf[32], *end;
    if (!number_cstr(bytes, len, buf))
        return false;
    double v = strtod(buf, &end);
    if (*end)
        return false;
    *out = v;
    return true;
}

/* Bytes without a usable type: TEXT when clean UTF-8, else BLOB. */
static void text_or_blob_result(sqlite3_context *ctx, const void *bytes, size_t len)
{
    if (sqlkey_is_clean_utf8(bytes, len))
        sqlite3_result_text64(ctx, bytes, len, SQLITE_TRANSIENT, SQLITE_UTF8);
    else
        sqlite3_result_blob64(ctx, bytes, len, SQLITE_TRANSIENT);
}

void sqlvalue_result(sqlite3_context *ctx, const void *bytes, size_t len, unsigned tag)
{
    sqlite3_int64 i;
    double d;
    switch (sqlkey_value_tag(tag)) {
    case HMM_TAG_COUNTER:
        if (parse_int64(bytes, len, &i)) {
            sqlite3_result_int64(ctx, i);
            return;
        }
        break; /* not a number after all (a foreign writer): show the bytes */
    case SQLVALUE_TAG_REAL:
        if (parse_double(bytes, len, &d)) {
            sqlite3_result_double(ctx, d);
            return;
        }
        break;
    case SQLVALUE_TAG_TEXT:
        sqlite3_result_text64(ctx, bytes, len, SQLITE_TRANSIENT, SQLITE_UTF8);
        return;
    case SQLVALUE_TAG_NULL:
        sqlite3_result_null(ctx);
        return;
    case HMM_TAG_RAW:
        /* Bytes from a writer without types (hmm_put, `hashmmap put`, an
         * offset commit): a number in the very form SQL integers are
         * stored in reads as that integer ("42", not "042" or "+42", which
         * stay text), so nothing is lost when SQL writes it back. */
        if (sqlkey_is_canonical_int(bytes, len, &i)) {
            sqlite3_result_int64(ctx, i);
            return;
        }
        break;
    default:
        sqlite3_result_blob64(ctx, bytes, len, SQLITE_TRANSIENT);
        return;
    }
    text_or_blob_result(ctx, bytes, len);
}
