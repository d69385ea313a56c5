/*
 * errtext.c - the library's sentence plus detail, and keys as messages
 * echo them (errtext.h).
 */
#include <getopt.h>
#include <stdbool.h>
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

const char *errtext_prefix(const char *what, const char *text, char *buf, size_t cap)
{
    if (strstr(text, what))
        snprintf(buf, cap, "%s", "");
    else
        snprintf(buf, cap, "%s: ", what);
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

/* The word of argv that held the long option getopt_long just refused, or
 * NULL when it refused a short one.  It has always stepped past a long
 * option, so that is argv[optind - 1]; but a letter refused inside a
 * cluster ("-Zj") leaves optind on the cluster, and argv[optind - 1] is then
 * the word before it, which may be a long option given rightly.  What
 * getopt_long says tells them apart: a refused letter sets optopt to itself
 * and is never refused for a missing argument before its cluster ends, so a
 * "--" word there is the refused option when the argument was missing,
 * when optopt is 0 (unknown or ambiguous), or when it carries "=" that its
 * option does not take (then optopt is that option's val). */
static const char *refused_long_word(int opt, char *const argv[], const struct option *longopts,
                                     const struct option **found)
{
    const char *word = optind > 0 ? argv[optind - 1] : NULL;
    if (!word || strncmp(word, "--", 2) != 0)
        return NULL;
    size_t len = strcspn(word + 2, "=");
    const struct option *exact = NULL, *first = NULL;
    int prefixes = 0;
    for (const struct option *o = longopts; o->name; o++) {
        if (strncmp(o->name, word + 2, len) != 0)
            continue;
        if (strlen(o->name) == len)
            exact = o;
        if (!prefixes++)
            first = o;
    }
    *found = exact ? exact : prefixes == 1 ? first : NULL;
    if (opt == ':' || optopt == 0)
        return word;
    bool refused_argument = word[2 + len] == '=' && *found && (*found)->has_arg == no_argument &&
                            (*found)->val == optopt;
    return refused_argument ? word : NULL;
}

/* ", --max-size, --max-value": the long options that name (len bytes)
 * abbreviates, appended to buf. */
static void list_abbreviated(const char *name, size_t len, const struct option *longopts, char *buf, size_t cap)
{
    for (const struct option *o = longopts; o->name; o++) {
        size_t used = strlen(buf);
        if (strncmp(o->name, name, len) == 0 && used < cap)
            snprintf(buf + used, cap - used, "%s--%s", used ? ", " : "", o->name);
    }
}

const char *errtext_option(int opt, char *const argv[], const struct option *longopts, char *buf, size_t cap)
{
    const struct option *found = NULL;
    const char *word = refused_long_word(opt, argv, longopts, &found);
    if (!word) { /* "-xZ": the letter refused, not the cluster */
        if (opt == ':')
            snprintf(buf, cap, "-%c needs an argument", optopt);
        else
            snprintf(buf, cap, "unknown option '-%c'", optopt);
        return buf;
    }
    int len = (int)strcspn(word, "="); /* "--ttl=5s": the name alone */
    char candidates[ERRTEXT_MAX / 2] = "";
    if (!found)
        list_abbreviated(word + 2, (size_t)len - 2, longopts, candidates, sizeof candidates);
    if (opt == ':')
        snprintf(buf, cap, "%.*s needs an argument", len, word);
    else if (found && word[len] == '=' && found->has_arg == no_argument)
        snprintf(buf, cap, "option '%.*s' takes no argument", len, word);
    else if (strchr(candidates, ','))
        snprintf(buf, cap, "option '%.*s' is ambiguous (%s)", len, word, candidates);
    else
        snprintf(buf, cap, "unknown option '%.*s'", len, word);
    return buf;
}
