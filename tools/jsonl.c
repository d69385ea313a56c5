/*
 * jsonl.c - writing and parsing the JSON lines of dump and load (jsonl.h).
 * Input comes from users and files: every length is checked, every escape
 * validated, numbers and base64 taken only in the exact form dump writes;
 * a malformed line is refused with the reason, never half-read.
 */
#include <stdlib.h>
#include <string.h>

#include <hashmmap.h>

#include "tools/jsonl.h"


/* Strict UTF-8 (RFC 3629): no overlong forms, no UTF-16 surrogates, nothing
 * past U+10FFFF.  Bytes that fail are written as base64, so a dump never
 * contains text another JSON parser would reject or read differently. */
static bool valid_utf8(const unsigned char *s, size_t n)
{
    static const uint32_t min_for_len[] = {0, 0, 0x80, 0x800, 0x10000};
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!len || i + len > n)
            return false;
        uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
        for (size_t j = 1; j < len; j++) {
            if ((s[i + j] & 0xC0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + j] & 0x3F);
        }
        if (cp < min_for_len[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += len;
    }
    return true;
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void put_b64(FILE *out, const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0) | (i + 2 < n ? s[i + 2] : 0);
        putc(b64[v >> 18 & 63], out);
        putc(b64[v >> 12 & 63], out);
        putc(i + 1 < n ? b64[v >> 6 & 63] : '=', out);
        putc(i + 2 < n ? b64[v & 63] : '=', out);
    }
}

static void put_json_string(FILE *out, const unsigned char *s, size_t n)
{
    putc('"', out);
    for (size_t i = 0; i < n; i++) {
        unsigned c = s[i];
        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", out);
        else if (c == '\t')
            fputs("\\t", out);
        else if (c < 0x20 || c == 0x7f)
            fprintf(out, "\\u%04x", c);
        else
            putc((int)c, out);
    }
    putc('"', out);
}

/* "name":"text" when the bytes are UTF-8, else "name_b64":"base64". */
void jsonl_put_field(FILE *out, const char *name, const void *p, size_t n)
{
    if (valid_utf8(p, n)) {
        fprintf(out, "\"%s\":", name);
        put_json_string(out, p, n);
    } else {
        fprintf(out, "\"%s_b64\":\"", name);
        put_b64(out, p, n);
        putc('"', out);
    }
}


/* Every refusal goes through here, so load can say why. */
static bool refuse(struct jsonl_parser *ps, const char *why)
{
    ps->error = why;
    return false;
}

static void skip_ws(struct jsonl_parser *ps)
{
    while (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\r' || *ps->p == '\n')
        ps->p++;
}

static bool append(struct jsonl_parser *ps, const void *s, size_t n)
{
    if (ps->len + n + 1 > ps->cap) {
        size_t cap = ps->cap ? ps->cap * 2 : 256;
        while (cap < ps->len + n + 1)
            cap *= 2;
        char *nb = realloc(ps->buf, cap);
        if (!nb)
            return refuse(ps, "out of memory");
        ps->buf = nb;
        ps->cap = cap;
    }
    memcpy(ps->buf + ps->len, s, n);
    ps->len += n;
    ps->buf[ps->len] = '\0'; /* room reserved above */
    return true;
}

static bool put_utf8(struct jsonl_parser *ps, uint32_t cp)
{
    unsigned char u[4];
    size_t n = 0;
    if (cp < 0x80) {
        u[n++] = (unsigned char)cp;
    } else if (cp < 0x800) {
        u[n++] = (unsigned char)(0xC0 | cp >> 6);
        u[n++] = (unsigned char)(0x80 | (cp & 63));
    } else if (cp < 0x10000) {
        u[n++] = (unsigned char)(0xE0 | cp >> 12);
        u[n++] = (unsigned char)(0x80 | (cp >> 6 & 63));
        u[n++] = (unsigned char)(0x80 | (cp & 63));
    } else {
        u[n++] = (unsigned char)(0xF0 | cp >> 18);
        u[n++] = (unsigned char)(0x80 | (cp >> 12 & 63));
        u[n++] = (unsigned char)(0x80 | (cp >> 6 & 63));
        u[n++] = (unsigned char)(0x80 | (cp & 63));
    }
    return append(ps, u, n);
}

/* Exactly four hex digits (sscanf would take fewer, and the caller skips four). */
static bool hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0')
                     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                     : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
                                            : 16u;
        if (d > 15)
            return false;
        v = v << 4 | d;
    }
    *out = v;
    return true;
}

/* \uXXXX (ps->p after the 'u'), with a surrogate pair as one code point.
 * A lone surrogate has no UTF-8 form: storing its CESU bytes would write
 * invalid UTF-8 back into the next dump, so it is refused. */
static bool parse_unicode_escape(struct jsonl_parser *ps)
{
    unsigned cp, lo;
    if (!hex4(ps->p, &cp))
        return refuse(ps, "a \\u escape needs four hex digits");
    ps->p += 4;
    if (cp >= 0xDC00 && cp <= 0xDFFF)
        return refuse(ps, "lone UTF-16 low surrogate (\\uDC00-\\uDFFF) in a string");
    if (cp >= 0xD800 && cp < 0xDC00) {
        if (ps->p[0] != '\\' || ps->p[1] != 'u' || !hex4(ps->p + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF)
            return refuse(ps, "lone UTF-16 high surrogate (\\uD800-\\uDBFF) in a string");
        ps->p += 6;
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    }
    return put_utf8(ps, cp);
}

static bool parse_string(struct jsonl_parser *ps)
{
    ps->len = 0;
    if (*ps->p++ != '"')
        return refuse(ps, "expected a string");
    for (;;) {
        char c = *ps->p++;
        if (c == '"')
            return append(ps, "", 0);
        if (c == '\0')
            return refuse(ps, "unterminated string");
        if ((unsigned char)c < 0x20)
            return refuse(ps, "control character in a string (escape it)");
        if (c != '\\') {
            if (!append(ps, &c, 1))
                return false;
            continue;
        }
        c = *ps->p++;
        static const char escapes[] = "\"\\/bfnrt", decoded[] = "\"\\/\b\f\n\r\t";
        const char *esc = c ? strchr(escapes, c) : NULL;
        if (esc) {
            if (!append(ps, &decoded[esc - escapes], 1))
                return false;
        } else if (c == 'u') {
            if (!parse_unicode_escape(ps))
                return false;
        } else {
            return refuse(ps, "unknown escape in a string");
        }
    }
}

static int b64_digit(char c)
{
    const char *at = c ? strchr(b64, c) : NULL;
    return at ? (int)(at - b64) : -1;
}

/* Canonical, padded base64 as dump writes it: length a multiple of 4, '='
 * only as the last one or two characters, unused bits zero.  Anything else
 * ("QQ==garbage!!", "Q") is refused rather than half-decoded. */
static bool decode_b64(struct jsonl_parser *ps)
{
    size_t n = ps->len, out = 0;
    if (n % 4)
        return refuse(ps, "base64 length is not a multiple of 4");
    for (size_t i = 0; i < n; i += 4) {
        const char *q = ps->buf + i;
        bool last = i + 4 == n;
        int pad = last && q[3] == '=' ? (q[2] == '=' ? 2 : 1) : 0;
        uint32_t v = 0;
        for (int j = 0; j < 4 - pad; j++) {
            int d = b64_digit(q[j]);
            if (d < 0)
                return refuse(ps, "not base64 (a character outside A-Z a-z 0-9 + / or '=' before the end)");
            v = v << 6 | (uint32_t)d;
        }
        v <<= 6 * pad;
        if ((pad == 2 && (v & 0xFFFF)) || (pad == 1 && (v & 0xFF)))
            return refuse(ps, "not canonical base64 (bits after the last byte)");
        ps->buf[out++] = (char)(v >> 16);
        if (pad < 2)
            ps->buf[out++] = (char)(v >> 8 & 0xFF);
        if (pad < 1)
            ps->buf[out++] = (char)(v & 0xFF);
    }
    ps->len = out;
    return true;
}

/* A JSON number that is a whole number within 0..max: no sign, fraction,
 * exponent or overflow (strtoull would take "-1" as 2^64-1 and stop at "1e23"). */
static bool parse_whole(struct jsonl_parser *ps, uint64_t max, uint64_t *out)
{
    const char *p = ps->p;
    uint64_t v = 0;
    if (*p < '0' || *p > '9')
        return false;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (max - d) / 10)
            return false;
        v = v * 10 + d;
    }
    if (*p == '.' || *p == 'e' || *p == 'E')
        return false;
    ps->p = p;
    *out = v;
    return true;
}

enum jsonl_field { F_KEY, F_KEY_B64, F_VALUE, F_VALUE_B64, F_TTL_MS, F_TAG, F_UNKNOWN };

/* Exact names only: a field that merely starts with "key" ("keyboard") is
 * not the key. */
static enum jsonl_field field_named(const char *name, size_t len)
{
    static const char *const names[] = {"key", "key_b64", "value", "value_b64", "ttl_ms", "tag"};
    for (int f = 0; f < F_UNKNOWN; f++)
        if (strlen(names[f]) == len && memcmp(names[f], name, len) == 0)
            return (enum jsonl_field)f;
    return F_UNKNOWN;
}

static bool take_bytes(struct jsonl_parser *ps, enum jsonl_field f, struct jsonl_record *r)
{
    bool is_key = f == F_KEY || f == F_KEY_B64;
    if (is_key ? r->has_key : r->has_val)
        return refuse(ps, is_key ? "the key is given twice" : "the value is given twice");
    if (!parse_string(ps))
        return false;
    if ((f == F_KEY_B64 || f == F_VALUE_B64) ? !decode_b64(ps)
                                              : !valid_utf8((const unsigned char *)ps->buf, ps->len))
        return ps->error ? false : refuse(ps, "text is not valid UTF-8 (write it as key_b64/value_b64)");
    char *copy = malloc(ps->len + 1);
    if (!copy)
        return refuse(ps, "out of memory");
    memcpy(copy, ps->buf, ps->len);
    copy[ps->len] = '\0';
    if (is_key) {
        r->key = copy;
        r->klen = ps->len;
        r->has_key = true;
    } else {
        r->val = copy;
        r->vlen = ps->len;
        r->has_val = true;
    }
    return true;
}

static bool parse_field(struct jsonl_parser *ps, struct jsonl_record *r)
{
    if (!parse_string(ps))
        return false;
    enum jsonl_field f = field_named(ps->buf, ps->len);
    if (f == F_UNKNOWN) {
        snprintf(ps->errbuf, sizeof ps->errbuf, "unknown field \"%.40s\" (fields: key, key_b64, value, "
                 "value_b64, ttl_ms, tag)", ps->buf);
        return refuse(ps, ps->errbuf);
    }
    skip_ws(ps);
    if (*ps->p++ != ':')
        return refuse(ps, "expected ':' after a field name");
    skip_ws(ps);
    uint64_t v;
    if (f == F_TTL_MS) {
        if (!parse_whole(ps, UINT64_MAX, &v))
            return refuse(ps, "\"ttl_ms\" must be a whole number of milliseconds, 0 to 18446744073709551615");
        r->ttl_ms = v;
        return true;
    }
    if (f == F_TAG) {
        if (!parse_whole(ps, HMM_TAG_MAX, &v))
            return refuse(ps, "\"tag\" must be a whole number from 0 to 255");
        r->tag = (unsigned)v;
        return true;
    }
    return take_bytes(ps, f, r);
}

bool jsonl_parse_record(const char *line, struct jsonl_record *r, struct jsonl_parser *ps)
{
    ps->error = NULL;
    ps->p = line;
    skip_ws(ps);
    if (*ps->p++ != '{')
        return refuse(ps, "not a JSON object");
    skip_ws(ps);
    if (*ps->p != '}') {
        for (;;) {
            skip_ws(ps);
            if (!parse_field(ps, r))
                return false;
            skip_ws(ps);
            if (*ps->p != ',')
                break;
            ps->p++;
        }
    }
    if (*ps->p++ != '}')
        return refuse(ps, "expected ',' or '}' after a field");
    skip_ws(ps);
    if (*ps->p != '\0')
        return refuse(ps, "text after the object");
    if (!r->has_key || !r->has_val)
        return refuse(ps, "need both a key and a value ({\"key\":...,\"value\":...})");
    return true;
}


void jsonl_record_free(struct jsonl_record *r)
{
    free(r->key);
    free(r->val);
    r->key = r->val = NULL;
}
