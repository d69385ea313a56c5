/*
 * Logging to stderr with levels.  Under systemd (JOURNAL_STREAM set, stderr
 * connected to the journal) each line starts with the sd-daemon "<N>"
 * priority prefix and nothing else, since the journal adds time and pid;
 * elsewhere a line carries the wall time and the level's name.
 */
#ifdef HAVE_CONFIG_H
#include "config.h" /* _GNU_SOURCE: accept4, getaddrinfo */
#endif
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "repl.h"

int repl_log_threshold = REPL_LOG_INFO;

static const char *level_name(int level)
{
    switch (level) {
    case REPL_LOG_ERROR: return "error";
    case REPL_LOG_WARN: return "warning";
    case REPL_LOG_INFO: return "info";
    default: return "debug";
    }
}

int repl_log_level_parse(const char *name)
{
    static const int levels[] = {REPL_LOG_ERROR, REPL_LOG_WARN, REPL_LOG_INFO, REPL_LOG_DEBUG};
    for (unsigned i = 0; i < sizeof levels / sizeof levels[0]; i++)
        if (strcmp(name, level_name(levels[i])) == 0 || (levels[i] == REPL_LOG_WARN && strcmp(name, "warn") == 0))
            return levels[i];
    return -1;
}

void repl_log(int level, const char *fmt, ...)
{
    if (level > repl_log_threshold)
        return;
    static int journal = -1;
    if (journal < 0)
        journal = getenv("JOURNAL_STREAM") != NULL;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (journal) {
        fprintf(stderr, "<%d>%s\n", level, line);
    } else {
        uint64_t now_ms = wall_clock_ms();
        time_t sec = (time_t)(now_ms / 1000);
        struct tm tm;
        char when[32];
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", gmtime_r(&sec, &tm));
        fprintf(stderr, "%s.%03uZ hashmmap-replicate %s: %s\n", when, (unsigned)(now_ms % 1000), level_name(level),
                line);
    }
}
