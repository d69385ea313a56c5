/*
 * errtext.h - how the tools and the SQLite extension word a failure of the
 * library, in one place so that every message reads the same:
 *
 *   "Permission denied (open of /var/lib/app/offsets/map: ...)"
 *
 * the sentence of hmm_strerror(rc), then hmm_last_error()'s detail in
 * parentheses when the calling thread has one the sentence does not
 * already say.  Call it right after the failing call: the next call to the
 * library replaces the detail.
 *
 * A key echoed in a message is shortened by errtext_key: a key may be
 * 64 KiB, and a message is one line a person reads.
 */
#ifndef TOOLS_ERRTEXT_H
#define TOOLS_ERRTEXT_H

#include <getopt.h>
#include <stddef.h>

/* Room for any sentence plus the library's longest detail (511 bytes). */
#define ERRTEXT_MAX 640

/* The text for rc in buf (cap bytes, truncated to fit); returns buf. */
const char *errtext(int rc, char *buf, size_t cap);

/* Bytes of a key a message shows; a longer key is shown as its first
 * ERRTEXT_KEY_SHOWN bytes, then "... (N bytes)". */
#define ERRTEXT_KEY_SHOWN 64
#define ERRTEXT_KEY_MAX (ERRTEXT_KEY_SHOWN + 40)

/* The key (klen bytes) as a message shows it, in buf (cap bytes, room for
 * ERRTEXT_KEY_MAX); returns buf. */
const char *errtext_key(const void *key, size_t klen, char *buf, size_t cap);

/* getopt_long's refusal, with opterr off, as one line naming the option:
 * opt is what it returned ('?' unknown, ':' argument missing: the optstring
 * starts with ':'), written the argument that held it.  A long option is
 * named as written, a short one by its letter (optopt), also in a cluster.
 * In buf (cap bytes); returns buf. */
const char *errtext_option(int opt, const char *written, char *buf, size_t cap);

/* The argument that held the option getopt_long just refused, for
 * errtext_option, when it may permute argv: it has stepped past a long
 * option (unknown: optopt is 0; or missing its argument), not always past a
 * short one still inside its cluster (then "-", which names the letter). */
#define ERRTEXT_REFUSED_ARG(opt, argv) ((opt) == ':' || optopt == 0 ? (argv)[optind - 1] : "-")

#endif
