/*
 * errtext.c - the library's sentence plus detail (errtext.h).
 */
#include <stdio.h>
#include <string.h>

#include <hashmmap.h>

#include "tools/errtext.h"

const char *errtext(int rc, char *buf, size_t cap)
{
    const char *sentence = hmm_strerror(rc), *detail = hmm_last_error();
    /* Some details are the sentence again ("no such key"): once is enough. */
    if (*detail && !strstr(sentence, detail))
        snprintf(buf, cap, "%s (%s)", sentence, detail);
    else
        snprintf(buf, cap, "%s", sentence);
    return buf;
}
