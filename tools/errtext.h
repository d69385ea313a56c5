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
 */
#ifndef TOOLS_ERRTEXT_H
#define TOOLS_ERRTEXT_H

#include <stddef.h>

/* Room for any sentence plus the library's longest detail (511 bytes). */
#define ERRTEXT_MAX 640

/* The text for rc in buf (cap bytes, truncated to fit); returns buf. */
const char *errtext(int rc, char *buf, size_t cap);

#endif
