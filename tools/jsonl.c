/*
 * jsonl.c - writing and parsing the JSON lines of dump and load (jsonl.h).
 * Input comes from users and files: every length is checked, every escape
 * validated; a malformed line is refused, never half-read.
 */
#include <stdlib.h>
#include <string.h>

#include "tools/jsonl.h"


static bool valid_utf8(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!len || i + len > n)
            return false;
        for (size_t j = 1; j < len; j++)
            if ((s[i + j] & 0xC0) != 0x80)
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
            return false;
        ps->buf = nb;
        ps->cap = cap;
    }
    memcpy(ps->buf + ps->len, s, n);
    ps->len += n;
    ps->buf[ps->len] = '\0'; /* room reserved above: the name compare reads it as a string */
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

static bool parse_string(struct jsonl_parser *ps)
{
    ps->len = 0;
    if (*ps->p++ != '"')
        return false;
    for (;;) {
        char c = *ps->p++;
        if (c == '"')
            return append(ps, "", 0);
        if (c == '\0' || (unsigned char)c < 0x20)
            return false;
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
            unsigned cp;
            if (!hex4(ps->p, &cp))
                return false;
            ps->p += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && ps->p[0] == '\\' && ps->p[1] == 'u') {
                unsigned lo;
                if (!hex4(ps->p + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                    return false;
                ps->p += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            if (!put_utf8(ps, cp))
                return false;
        } else {
            return false;
        }
    }
}

static bool decode_b64(struct jsonl_parser *ps)
{
    size_t n = ps->len, out = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        char c = ps->buf[i];
        if (c == '=')
            break;
        const char *at = strchr(b64, c);
        if (!at || !c)
            return false;
        acc = acc << 6 | (uint32_t)(at - b64);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            ps->buf[out++] = (char)(acc >> bits & 0xFF);
        }
    }
    ps->len = out;
    return true;
}


bool jsonl_parse_record(const char *line, struct jsonl_record *r, struct jsonl_parser *ps)
{
    ps->p = line;
    skip_ws(ps);
    if (*ps->p++ != '{')
        return false;
    for (;;) {
        skip_ws(ps);
        if (*ps->p == '}')
            break;
        if (!parse_string(ps))
            return false;
        char name[16];
        snprintf(name, sizeof name, "%s", ps->buf);
        skip_ws(ps);
        if (*ps->p++ != ':')
            return false;
        skip_ws(ps);
        if (strcmp(name, "ttl_ms") == 0 || strcmp(name, "tag") == 0) {
            char *end;
            unsigned long long v = strtoull(ps->p, &end, 10);
            if (end == ps->p)
                return false;
            ps->p = end;
            if (name[0] == 't' && name[1] == 't')
                r->ttl_ms = v;
            else
                r->tag = (unsigned)v;
        } else {
            if (!parse_string(ps))
                return false;
            bool is_b64 = strstr(name, "_b64") != NULL;
            if (is_b64 && !decode_b64(ps))
                return false;
            char *copy = malloc(ps->len + 1);
            if (!copy)
                return false;
            memcpy(copy, ps->buf, ps->len);
            if (strncmp(name, "key", 3) == 0) {
                free(r->key);
                r->key = copy;
                r->klen = ps->len;
                r->has_key = true;
            } else if (strncmp(name, "value", 5) == 0) {
                free(r->val);
                r->val = copy;
                r->vlen = ps->len;
                r->has_val = true;
            } else {
                free(copy);
            }
        }
        skip_ws(ps);
        if (*ps->p == ',')
            ps->p++;
        else if (*ps->p != '}')
            return false;
    }
    ps->p++;
    skip_ws(ps);
    return *ps->p == '\0' && r->has_key && r->has_val;
}


void jsonl_record_free(struct jsonl_record *r)
{
    free(r->key);
    free(r->val);
    r->key = r->val = NULL;
}
