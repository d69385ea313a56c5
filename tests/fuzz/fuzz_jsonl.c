/*
 * fuzz_jsonl.c - libFuzzer harness for the JSON lines that `hashmmap load`
 * reads: any input is parsed without a crash, a refused line always has a
 * reason, and a record that parses writes back (as dump would) to a line
 * that parses to the same record.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/jsonl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void round_trip(const struct jsonl_record *r)
{
    char *line = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&line, &len);
    fputc('{', out);
    jsonl_put_field(out, "key", r->key, r->klen);
    fputc(',', out);
    jsonl_put_field(out, "value", r->val, r->vlen);
    fputc('}', out);
    fclose(out);
    struct jsonl_parser ps = {0};
    struct jsonl_record again = {0};
    if (!jsonl_parse_record(line, &again, &ps) || again.klen != r->klen || again.vlen != r->vlen ||
        memcmp(again.key, r->key, r->klen) != 0 || memcmp(again.val, r->val, r->vlen) != 0)
        abort(); /* dump would write something load reads differently */
    jsonl_record_free(&again);
    free(ps.buf);
    free(line);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    struct jsonl_parser ps = {0};
    for (char *line = text, *next; line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        struct jsonl_record r = {0};
        if (jsonl_parse_record(line, &r, &ps))
            round_trip(&r);
        else if (!ps.error)
            abort(); /* every refusal must say why (load prints it) */
        jsonl_record_free(&r);
    }
    free(ps.buf);
    free(text);
    return 0;
}
