/*
 * units.c - the size and duration grammar of units.h.
 *
 * The whole part is read as an exact integer, so 18446744073709551615 (no
 * unit) is a size; only the fraction goes through a double, where its error
 * (under 2^-12 of a unit for T) cannot move the rounded result by a byte.
 * Parsed by hand rather than with strtod: strtod would take exponents, hex,
 * blanks, signs and the locale's decimal comma.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <strings.h>

#include "tools/units.h"

struct unit {
    const char *suffix;
    uint64_t factor;
};

static const struct unit size_units[] = {
    {"", 1},
    {"B", 1},
    {"K", UINT64_C(1) << 10}, {"KB", UINT64_C(1) << 10}, {"KiB", UINT64_C(1) << 10},
    {"M", UINT64_C(1) << 20}, {"MB", UINT64_C(1) << 20}, {"MiB", UINT64_C(1) << 20},
    {"G", UINT64_C(1) << 30}, {"GB", UINT64_C(1) << 30}, {"GiB", UINT64_C(1) << 30},
    {"T", UINT64_C(1) << 40}, {"TB", UINT64_C(1) << 40}, {"TiB", UINT64_C(1) << 40},
    {NULL, 0},
};

#define UNITS_DAY_MS UINT64_C(86400000)

static const struct unit duration_units_ms[] = {
    {"", 1000}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", UNITS_DAY_MS}, {NULL, 0},
};

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* NUMBER at *s: its whole part exactly, its fraction in [0, 1); *s moves
 * past it.  -EINVAL when there is no number, -ERANGE when the whole part
 * passes 2^64 - 1. */
static int parse_number(const char **s, uint64_t *whole, double *fraction)
{
    const char *p = *s;
    if (!is_digit(*p))
        return -EINVAL;
    uint64_t w = 0;
    for (; is_digit(*p); p++) {
        unsigned d = (unsigned)(*p - '0');
        if (w > (UINT64_MAX - d) / 10)
            return -ERANGE;
        w = w * 10 + d;
    }
    double f = 0, scale = 1;
    if (*p == '.') {
        p++;
        if (!is_digit(*p))
            return -EINVAL;
        for (; is_digit(*p); p++) {
            scale /= 10; /* digits past double's precision add nothing, and no harm */
            f += (*p - '0') * scale;
        }
    }
    *s = p;
    *whole = w;
    *fraction = f;
    return 0;
}

/* whole.fraction * factor, rounded to the nearest integer (but never from
 * a nonzero amount to 0), without passing 2^64 - 1. */
static int scale_checked(uint64_t whole, double fraction, uint64_t factor, uint64_t *out)
{
    if (whole && factor > UINT64_MAX / whole)
        return -ERANGE;
    uint64_t v = whole * factor;
    /* fraction * factor < factor <= 2^40: exact enough, and the cast is
     * defined (no libm needed for rounding a non-negative value). */
    uint64_t extra = (uint64_t)(fraction * (double)factor + 0.5);
    if (extra > UINT64_MAX - v)
        return -ERANGE;
    /* Zero means "none" to every caller (a TTL that never expires, the
     * default size): a nonzero amount rounds up to one unit, never to 0. */
    if (v + extra == 0 && fraction > 0)
        extra = 1;
    *out = v + extra;
    return 0;
}

static int parse_with_units(const char *s, const struct unit *units, uint64_t *out)
{
    if (!s)
        return -EINVAL;
    uint64_t whole;
    double fraction;
    int rc = parse_number(&s, &whole, &fraction);
    if (rc)
        return rc;
    for (const struct unit *u = units; u->suffix; u++)
        if (strcasecmp(s, u->suffix) == 0)
            return scale_checked(whole, fraction, u->factor, out);
    return -EINVAL;
}

int units_parse_size(const char *s, uint64_t *bytes)
{
    return parse_with_units(s, size_units, bytes);
}

int units_parse_duration_ms(const char *s, uint64_t *ms)
{
    return parse_with_units(s, duration_units_ms, ms);
}

int units_parse_interval_ms(const char *s, uint64_t *ms)
{
    uint64_t v;
    int rc = units_parse_duration_ms(s, &v);
    if (rc)
        return rc;
    if (v == 0 || v > UNITS_DAY_MS)
        return -ERANGE;
    *ms = v;
    return 0;
}
