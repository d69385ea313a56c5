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

/* "WHAT: " to put before text, or "" when text already names what (most
 * errors of hmm_open start with the map's path): a message names the
 * directory once.  In buf (cap bytes); returns buf. */
const char *errtext_prefix(const char *what, const char *text, char *buf, size_t cap);

/* getopt_long's refusal, with opterr off, as one line naming the option
 * as it was written: opt is what getopt_long returned ('?', or ':' for a
 * missing argument, the optstring starting with ':'), argv and longopts what
 * it was given.  Call it right after the refusal: it reads optind and
 * optopt to find the word that held the option, also when getopt_long
 * permutes argv.  One of
 *
 *   unknown option '--frob'                 unknown option '-Z' (also in "-jZ")
 *   --ttl needs an argument                 -w needs an argument
 *   option '--json' takes no argument       (written --json=1)
 *   option '--max' is ambiguous (--max-size, --max-value)
 *
 * in buf (cap bytes); returns buf. */
const char *errtext_option(int opt, char *const argv[], const struct option *longopts, char *buf, size_t cap);

#endif
