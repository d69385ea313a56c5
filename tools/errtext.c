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
    /* Say each thing once: some details are the sentence again, others
     * already end in it ("/srv/map: No such file or directory"). */
    if (!*detail || strstr(sentence, detail))
        snprintf(buf, cap, "%s", sentence);
    else if (strstr(detail, sentence))
        snprintf(buf, cap, "%s", detail);
    else
        snprintf(buf, cap, "%s (%s)", sentence, detail);
    return buf;
}
