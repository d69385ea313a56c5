/*
 * errtext.c - the library's sentence plus detail, and keys as messages
 * echo them (errtext.h).
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <hashmmap.h>

#include "tools/errtext.h"

const char *errtext(int rc, char *buf, size_t cap)
{
    const char *sentence = hmm_strerror(rc), *detail = hmm_last_error();
    /* Some details are the sentence again ("no such key"), some the
     * sentence with what it is about ("DIR: No such file or directory"):
     * once is enough. */
    if (!*detail || strstr(sentence, detail))
        snprintf(buf, cap, "%s", sentence);
    else if (strstr(detail, sentence))
        snprintf(buf, cap, "%s", detail);
    else
        snprintf(buf, cap, "%s (%s)", sentence, detail);
    return buf;
}

const char *errtext_key(const void *key, size_t klen, char *buf, size_t cap)
{
    const char *k = key;
    if (klen <= ERRTEXT_KEY_SHOWN) {
        snprintf(buf, cap, "%.*s", (int)klen, k);
        return buf;
    }
    /* Cut before a UTF-8 continuation byte, not in the middle of a
     * character: a terminal shows the start of the key intact. */
    size_t cut = ERRTEXT_KEY_SHOWN;
    while (cut > 0 && ((unsigned char)k[cut] & 0xC0) == 0x80)
        cut--;
    snprintf(buf, cap, "%.*s... (%zu bytes)", (int)cut, k, klen);
    return buf;
}

const char *errtext_option(int opt, const char *written, char *buf, size_t cap)
{
    int len = (int)strcspn(written, "="); /* "--ttl=5s": the name alone */
    char letter[3] = {'-', (char)optopt, '\0'};
    if (strncmp(written, "--", 2) != 0) { /* "-xZ": the letter refused, not the cluster */
        written = letter;
        len = 2;
    }
    if (opt == ':')
        snprintf(buf, cap, "%.*s needs an argument", len, written);
    else
        snprintf(buf, cap, "unknown option '%.*s'", len, written);
    return buf;
}
