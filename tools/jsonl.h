/*
 * jsonl.h - the JSON lines format of `hashmmap dump` and `hashmmap load`:
 * one flat object per entry, {"key":"...","value":"..."} with JSON string
 * escapes when the bytes are UTF-8, "key_b64"/"value_b64" in base64
 * otherwise, and "ttl_ms" and "tag" when set.  Shared by the tool and its
 * fuzz harness.
 */
#ifndef HMM_TOOLS_JSONL_H
#define HMM_TOOLS_JSONL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* A tiny parser for the flat objects dump writes. */
struct jsonl_parser {
    const char *p;
    char *buf;       /* decoded string */
    size_t len, cap;
    const char *error; /* why the last jsonl_parse_record refused its line */
    char errbuf[160];  /* room for a reason that names a field */
};

struct jsonl_record {
    char *key, *val;
    size_t klen, vlen;
    uint64_t ttl_ms;
    unsigned tag;
    bool has_key, has_val;
};

/* Write "name":"..." (or "name_b64":"...") for n bytes at p. */
void jsonl_put_field(FILE *out, const char *name, const void *p, size_t n);
/* Parse one line into r (which owns its key and value: jsonl_record_free);
 * ps is scratch space reused across lines (free ps->buf at the end).
 * false when the line is not a dump record: ps->error then says why
 * (unknown field, bad number, lone surrogate, non-canonical base64, ...). */
bool jsonl_parse_record(const char *line, struct jsonl_record *r, struct jsonl_parser *ps);
void jsonl_record_free(struct jsonl_record *r);

#endif
