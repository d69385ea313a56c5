/*
 * sqlkey.h - SQL values as map keys, and back (docs/FORMAT.md, "SQL
 * values", keys).  Internal to sqlite-vtab/.
 *
 * A key is its bytes, so that every other client of the map (the C API,
 * `hashmmap get`) finds it: text as its UTF-8, numbers as their decimal
 * text, blobs as their bytes.  What the bytes alone would not tell (text
 * that looks like an integer, a blob that is valid UTF-8, a real) is kept
 * in two bits of the entry's tag beside the value's SQL type, so that a
 * key reads back with the type it was written with, and `key = v` finds a
 * row exactly when SQLite, comparing the row's key with v, would.
 */
#ifndef HMM_SQLKEY_H
#define HMM_SQLKEY_H

#include <stdbool.h>
#include <stddef.h>
#include <sqlite3ext.h>

/* The tag of an entry written by the extension: the value's type in the
 * low nibble (sqlvalue.h), the key's type in these bits. */
#define SQLKEY_TYPE_MASK 0x30u
#define SQLKEY_INFERRED 0x00u /* from the bytes: decimal int64 as %lld prints it -> INTEGER,
                               * UTF-8 without NUL -> TEXT, else BLOB */
#define SQLKEY_TEXT 0x10u
#define SQLKEY_BLOB 0x20u
#define SQLKEY_REAL 0x30u
#define SQLVALUE_TYPE_MASK 0x0Fu

/* The comparison classes of SQLite: INTEGER and REAL compare as numbers
 * with each other; TEXT and BLOB each only with their own kind. */
enum sqlkey_class { SQLKEY_NUMERIC = 1, SQLKEY_CLASS_TEXT = 2, SQLKEY_CLASS_BLOB = 4 };

/* An SQL value as a key.  Numbers are canonical, so that equal numbers
 * have equal bytes: 42, 42.0 and 4.2e1 are all "42".  The bytes point into
 * the sqlite3_value (valid while it is) or into num. */
struct sqlkey {
    const void *bytes;
    size_t len;
    unsigned type_bits;      /* SQLKEY_INFERRED, _TEXT, _BLOB or _REAL */
    enum sqlkey_class cls;
    char num[32];
};

/* Encode v.  Returns 0, or -1 for NULL (no key is NULL; nothing matches it). */
int sqlkey_encode(sqlite3_value *v, struct sqlkey *k);

/* The key type bits of an entry's tag; 0 for tags the extension did not
 * write (a foreign application's tags 6..255 keep their own meaning). */
unsigned sqlkey_bits_of_tag(unsigned tag);
/* The value's part of an entry's tag (the whole tag when foreign). */
unsigned sqlkey_value_tag(unsigned tag);

/* The SQL type (SQLITE_INTEGER, _FLOAT, _TEXT or _BLOB) the key bytes of an
 * entry with this tag read as. */
int sqlkey_type(const void *bytes, size_t len, unsigned tag);

/* The comparison class of that type. */
enum sqlkey_class sqlkey_class_of(const void *bytes, size_t len, unsigned tag);

/* Set the result of ctx to the key, with its type. */
void sqlkey_result(sqlite3_context *ctx, const void *bytes, size_t len, unsigned tag);

/* Helpers shared with sqlvalue.c. */
bool sqlkey_is_clean_utf8(const unsigned char *s, size_t n);
bool sqlkey_is_canonical_int(const void *bytes, size_t len, sqlite3_int64 *out);

#endif
