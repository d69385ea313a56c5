/*
 * units.h - sizes and durations as people write them: one grammar for the
 * command-line tools (hashmmap create --size 64M --ttl 30s) and for the
 * options of the SQLite extension (size='1.5G', ttl='500ms').
 *
 *   VALUE    = NUMBER [UNIT]
 *   NUMBER   = DIGITS [ "." DIGITS ]      no sign, exponent, blanks, inf or nan
 *   size     UNIT: B, or K, M, G, T each alone or followed by B or iB;
 *            always powers of two (K = KB = KiB = 1024 bytes); none = bytes
 *   duration UNIT: ms, s, m (minutes), h, d; none = seconds
 *
 * Units are case-insensitive (64mb = 64M).  A fraction is rounded to the
 * nearest byte or millisecond (1.5K = 1536).  Anything else is refused, not
 * guessed: -EINVAL for text outside the grammar, -ERANGE for a value past
 * 2^64 - 1 bytes or milliseconds.  *out is set only on success.
 */
#ifndef TOOLS_UNITS_H
#define TOOLS_UNITS_H

#include <stdint.h>

int units_parse_size(const char *s, uint64_t *bytes);
int units_parse_duration_ms(const char *s, uint64_t *ms);
/* A pause between passes (hashmmap-stat --watch, hashmmap-tail
 * --sleep-interval): a duration over 0 and up to a day, else -ERANGE. */
int units_parse_interval_ms(const char *s, uint64_t *ms);
/* What units_parse_interval_ms takes, as the tools' refusals say it. */
#define UNITS_INTERVAL_TEXT "a duration over 0 and up to a day, like 0.5, 500ms or 2m"

#endif
