/*
 * sqlkey.c - SQL values as map keys, and back (sqlkey.h; docs/FORMAT.md,
 * "SQL values").
 *
 * The one rule: the key column behaves as in a normal table whose key has
 * no declared type (BLOB affinity: no conversions), so an index lookup, a
 * scan and a normal table give the same rows.  The index lookup (key = v,
 * key IS v, key IN (...)) finds the entry by v's bytes, then keeps it only
 * when the row's key, read back with its type, is of v's comparison class:
 * equal bytes and equal class is exactly SQLite's equality here, because
 * numbers are encoded canonically.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqlite-vtab/sqlkey.h"
#include "sqlite-vtab/sqlvalue.h"

SQLITE_EXTENSION_INIT3

/* Strict UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF)
 * and no NUL, which SQLite's text functions would stop at. */
bool sqlkey_is_clean_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c == 0)
            return false;
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t more;
        uint32_t cp, min;
        if ((c & 0xE0) == 0xC0) { more = 1; cp = c & 0x1F; min = 0x80; }
        else if ((c & 0xF0) == 0xE0) { more = 2; cp = c & 0x0F; min = 0x800; }
        else if ((c & 0xF8) == 0xF0) { more = 3; cp = c & 0x07; min = 0x10000; }
        else return false;
        if (n - i <= more)
            return false;
        for (size_t k = 1; k <= more; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += more + 1;
    }
    return true;
}

/* Decimal int64 exactly as "%lld" prints it ("42", "-7"; not "042", "+42"). */
bool sqlkey_is_canonical_int(const void *bytes, size_t len, sqlite3_int64 *out)
{
    char buf[32], again[32], *end;
    if (len == 0 || len >= sizeof buf)
        return false;
    memcpy(buf, bytes, len);
    buf[len] = '\0';
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return (size_t)snprintf(again, sizeof again, "%lld", v) == len && memcmp(again, bytes, len) == 0;
}

/* The type the bytes read as without help from the tag. */
static int inferred_type(const void *bytes, size_t len)
{
    sqlite3_int64 i;
    if (sqlkey_is_canonical_int(bytes, len, &i))
        return SQLITE_INTEGER;
    return sqlkey_is_clean_utf8(bytes, len) ? SQLITE_TEXT : SQLITE_BLOB;
}

/* A real as a key: integral values as the integer ("42", so that 42 and
 * 42.0 are one key, as they are equal in SQL), others with 17 significant
 * digits (exact round trip). */
static void encode_real(double d, struct sqlkey *k)
{
    /* The range test excludes 2^63 itself, which does not fit an int64. */
    if (d == floor(d) && d >= -9223372036854775808.0 && d < 9223372036854775808.0)
        k->len = (size_t)snprintf(k->num, sizeof k->num, "%lld", (long long)d);
    else
        k->len = (size_t)snprintf(k->num, sizeof k->num, "%.17g", d);
    k->bytes = k->num;
    k->type_bits = SQLKEY_REAL;
    k->cls = SQLKEY_NUMERIC;
}

int sqlkey_encode(sqlite3_value *v, struct sqlkey *k)
{
    int type = sqlite3_value_type(v);
    switch (type) {
    case SQLITE_NULL:
        return -1;
    case SQLITE_INTEGER:
        k->len = (size_t)snprintf(k->num, sizeof k->num, "%lld", sqlite3_value_int64(v));
        k->bytes = k->num;
        k->type_bits = SQLKEY_INFERRED;
        k->cls = SQLKEY_NUMERIC;
        return 0;
    case SQLITE_FLOAT:
        encode_real(sqlite3_value_double(v), k);
        return 0;
    default:
        break;
    }
    int want = type == SQLITE_TEXT ? SQLITE_TEXT : SQLITE_BLOB;
    sqlvalue_raw(v, want, &k->bytes, &k->len);
    k->cls = want == SQLITE_TEXT ? SQLKEY_CLASS_TEXT : SQLKEY_CLASS_BLOB;
    /* The bits only where the bytes alone would read as another type. */
    k->type_bits = inferred_type(k->bytes, k->len) == want ? SQLKEY_INFERRED
                   : want == SQLITE_TEXT                  ? SQLKEY_TEXT
                                                          : SQLKEY_BLOB;
    return 0;
}

/* Only the tags the extension writes carry key bits: value type 0..5
 * with key bits 0..3. */
static bool is_extension_tag(unsigned tag)
{
    return tag <= (SQLKEY_TYPE_MASK | 5u) && (tag & SQLVALUE_TYPE_MASK) <= 5u;
}

unsigned sqlkey_bits_of_tag(unsigned tag)
{
    return is_extension_tag(tag) ? tag & SQLKEY_TYPE_MASK : SQLKEY_INFERRED;
}

unsigned sqlkey_value_tag(unsigned tag)
{
    return is_extension_tag(tag) ? tag & SQLVALUE_TYPE_MASK : tag;
}

int sqlkey_type(const void *bytes, size_t len, unsigned tag)
{
    char buf[32], *end;
    switch (sqlkey_bits_of_tag(tag)) {
    case SQLKEY_TEXT:
        return SQLITE_TEXT;
    case SQLKEY_BLOB:
        return SQLITE_BLOB;
    case SQLKEY_REAL:
        if (len > 0 && len < sizeof buf) {
            memcpy(buf, bytes, len);
            buf[len] = '\0';
            (void)strtod(buf, &end);
            if (!*end)
                return SQLITE_FLOAT;
        }
        break; /* not a number after all: read the bytes */
    }
    return inferred_type(bytes, len);
}

enum sqlkey_class sqlkey_class_of(const void *bytes, size_t len, unsigned tag)
{
    switch (sqlkey_type(bytes, len, tag)) {
    case SQLITE_TEXT: return SQLKEY_CLASS_TEXT;
    case SQLITE_BLOB: return SQLKEY_CLASS_BLOB;
    default: return SQLKEY_NUMERIC;
    }
}

void sqlkey_result(sqlite3_context *ctx, const void *bytes, size_t len, unsigned tag)
{
    char buf[32];
    sqlite3_int64 i = 0;
    switch (sqlkey_type(bytes, len, tag)) {
    case SQLITE_INTEGER: /* only inferred: the bytes are a canonical int64 */
        (void)sqlkey_is_canonical_int(bytes, len, &i);
        sqlite3_result_int64(ctx, i);
        return;
    case SQLITE_FLOAT: /* sqlkey_type checked that it is a number under 32 bytes */
        memcpy(buf, bytes, len);
        buf[len] = '\0';
        sqlite3_result_double(ctx, strtod(buf, NULL));
        return;
    case SQLITE_TEXT:
        sqlite3_result_text64(ctx, bytes, len, SQLITE_TRANSIENT, SQLITE_UTF8);
        return;
    default:
        sqlite3_result_blob64(ctx, bytes, len, SQLITE_TRANSIENT);
        return;
    }
}
