/*
 * The size and duration grammar of tools/units.h, shared by the tools'
 * flags (--size, --ttl, ...) and the SQLite extension's options: what it
 * takes, how it rounds, and that everything else is refused, not guessed.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tools/units.h"

#define KiB (UINT64_C(1) << 10)
#define MiB (UINT64_C(1) << 20)
#define GiB (UINT64_C(1) << 30)
#define TiB (UINT64_C(1) << 40)

static uint64_t size_of(const char *s)
{
    uint64_t v = 0;
    assert_int_equal(units_parse_size(s, &v), 0);
    return v;
}

static uint64_t ms_of(const char *s)
{
    uint64_t v = 0;
    assert_int_equal(units_parse_duration_ms(s, &v), 0);
    return v;
}

/* rc for s, and *out left alone. */
static int size_refusal(const char *s)
{
    uint64_t v = 12345;
    int rc = units_parse_size(s, &v);
    assert_int_equal(v, 12345);
    return rc;
}

static int duration_refusal(const char *s)
{
    uint64_t v = 12345;
    int rc = units_parse_duration_ms(s, &v);
    assert_int_equal(v, 12345);
    return rc;
}

static void test_size_units_are_powers_of_two_in_any_case(void **state)
{
    (void)state;
    assert_int_equal(size_of("0"), 0);
    assert_int_equal(size_of("5"), 5);
    assert_int_equal(size_of("5B"), 5);
    assert_int_equal(size_of("1K"), KiB);
    assert_int_equal(size_of("1k"), KiB);
    assert_int_equal(size_of("1KB"), KiB);
    assert_int_equal(size_of("1KiB"), KiB);
    assert_int_equal(size_of("1kib"), KiB);
    assert_int_equal(size_of("64M"), 64 * MiB);
    assert_int_equal(size_of("64mb"), 64 * MiB);
    assert_int_equal(size_of("64MiB"), 64 * MiB);
    assert_int_equal(size_of("2G"), 2 * GiB);
    assert_int_equal(size_of("2GB"), 2 * GiB);
    assert_int_equal(size_of("1T"), TiB);
    assert_int_equal(size_of("1TiB"), TiB);
}

static void test_size_fraction_rounds_to_the_nearest_byte(void **state)
{
    (void)state;
    assert_int_equal(size_of("1.5K"), 1536);
    assert_int_equal(size_of("1.5M"), 3 * MiB / 2);
    assert_int_equal(size_of("0.25G"), GiB / 4);
    assert_int_equal(size_of("1.0005K"), 1025); /* 1024.512 */
    assert_int_equal(size_of("0.0001K"), 1);    /* 0.1024: a nonzero amount is never 0 */
    assert_int_equal(size_of("0.0"), 0);
    assert_int_equal(size_of("2.5"), 3);
    assert_int_equal(size_of("007.50000000000000000000001k"), 7680);
}

static void test_size_takes_every_value_up_to_2_64_minus_1(void **state)
{
    (void)state;
    assert_int_equal(size_of("18446744073709551615"), UINT64_MAX);
    assert_int_equal(size_of("16777215T"), UINT64_MAX - TiB + 1);
    assert_int_equal(size_refusal("18446744073709551616"), -ERANGE);
    assert_int_equal(size_refusal("16777216T"), -ERANGE);
    assert_int_equal(size_of("16777215.5T"), UINT64_MAX - TiB / 2 + 1);
    assert_int_equal(size_refusal("16777216.0T"), -ERANGE);
    assert_int_equal(size_refusal("99999999999999999999999999K"), -ERANGE);
}

static void test_size_refuses_what_is_outside_the_grammar(void **state)
{
    (void)state;
    static const char *const bad[] = {"", "K", "-1", "-1K", "+1", " 1", "1 ", "1 K", "1e3", "0x10", "inf",
                                      "nan", "infinity", "1.", ".5", "1..5", "1.5.2", "1,5K", "1KK", "1iB",
                                      "1Ki", "1KiBB", "1P", "1ms", "lots"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        print_message("size '%s'\n", bad[i]);
        assert_int_equal(size_refusal(bad[i]), -EINVAL);
    }
    assert_int_equal(size_refusal(NULL), -EINVAL);
}

static void test_duration_units_and_a_bare_number_of_seconds(void **state)
{
    (void)state;
    assert_int_equal(ms_of("500ms"), 500);
    assert_int_equal(ms_of("30"), 30000);
    assert_int_equal(ms_of("30s"), 30000);
    assert_int_equal(ms_of("2m"), 120000);
    assert_int_equal(ms_of("1h"), 3600000);
    assert_int_equal(ms_of("1d"), 86400000);
    assert_int_equal(ms_of("1D"), 86400000);
    assert_int_equal(ms_of("10MS"), 10);
    assert_int_equal(ms_of("1.5s"), 1500);
    assert_int_equal(ms_of("0.5ms"), 1);
    assert_int_equal(ms_of("0.0004"), 1); /* a 0.4 ms TTL must expire: not 0, "never" */
    assert_int_equal(ms_of("0.3ms"), 1);
    assert_int_equal(ms_of("0"), 0);
    assert_int_equal(ms_of("18446744000000000000ms"), UINT64_C(18446744000000000000));
}

static void test_duration_refuses_junk_signs_and_overflow(void **state)
{
    (void)state;
    static const char *const bad[] = {"", "s", "-5s", "+5s", "1e300", "inf", "nan", "5 s", "5sec", "1w",
                                      "1K", "1.s", "soon"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        print_message("duration '%s'\n", bad[i]);
        assert_int_equal(duration_refusal(bad[i]), -EINVAL);
    }
    assert_int_equal(duration_refusal("18446744073709552s"), -ERANGE);
    assert_int_equal(duration_refusal("213503982335d"), -ERANGE);
    assert_int_equal(duration_refusal("18446744073709551616ms"), -ERANGE);
}

static void test_interval_is_over_zero_and_up_to_a_day(void **state)
{
    (void)state;
    uint64_t v = 0;
    assert_int_equal(units_parse_interval_ms("0.1", &v), 0);
    assert_int_equal(v, 100);
    assert_int_equal(units_parse_interval_ms("1d", &v), 0);
    assert_int_equal(v, 86400000);
    v = 7;
    assert_int_equal(units_parse_interval_ms("0", &v), -ERANGE);
    assert_int_equal(v, 7);
    assert_int_equal(units_parse_interval_ms("0.0001", &v), 0); /* 0.1 ms: one, not zero */
    assert_int_equal(v, 1);
    v = 7;
    assert_int_equal(units_parse_interval_ms("86401", &v), -ERANGE);
    assert_int_equal(units_parse_interval_ms("x", &v), -EINVAL);
    assert_int_equal(v, 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_size_units_are_powers_of_two_in_any_case),
        cmocka_unit_test(test_size_fraction_rounds_to_the_nearest_byte),
        cmocka_unit_test(test_size_takes_every_value_up_to_2_64_minus_1),
        cmocka_unit_test(test_size_refuses_what_is_outside_the_grammar),
        cmocka_unit_test(test_duration_units_and_a_bare_number_of_seconds),
        cmocka_unit_test(test_duration_refuses_junk_signs_and_overflow),
        cmocka_unit_test(test_interval_is_over_zero_and_up_to_a_day),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
