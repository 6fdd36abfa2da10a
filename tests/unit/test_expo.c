/* test_expo.c - adding up /metrics pages (expo.c): sums per series, order of first
 * appearance, families kept whole, histograms still cumulative, counters only. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "base/buf.h"
#include "http/expo.h"

static const char *page_a =
    "# HELP mw_up 1 while up\n"
    "# TYPE mw_up gauge\n"
    "mw_up{worker=\"0\"} 1\n"
    "# HELP mw_conns Connections\n"
    "# TYPE mw_conns gauge\n"
    "mw_conns 3\n"
    "# HELP mw_msgs_total Messages\n"
    "# TYPE mw_msgs_total counter\n"
    "mw_msgs_total{route=\"/chat\"} 10\n"
    "# HELP mw_errors_total Errors by code\n"
    "# TYPE mw_errors_total counter\n"
    "# HELP mw_seconds Time\n"
    "# TYPE mw_seconds histogram\n"
    "mw_seconds_bucket{route=\"/chat\",le=\"0.1\"} 2\n"
    "mw_seconds_bucket{route=\"/chat\",le=\"+Inf\"} 3\n"
    "mw_seconds_sum{route=\"/chat\"} 0.25\n"
    "mw_seconds_count{route=\"/chat\"} 3\n";

static const char *page_b =
    "# HELP mw_up 1 while up\n"
    "# TYPE mw_up gauge\n"
    "mw_up{worker=\"1\"} 0\n"
    "# HELP mw_conns Connections\n"
    "# TYPE mw_conns gauge\n"
    "mw_conns 4\n"
    "# HELP mw_msgs_total Messages\n"
    "# TYPE mw_msgs_total counter\n"
    "mw_msgs_total{route=\"/chat\"} 5\n"
    "# HELP mw_errors_total Errors by code\n"
    "# TYPE mw_errors_total counter\n"
    "mw_errors_total{route=\"/chat\",code=\"bad message\"} 7\n"
    "# HELP mw_seconds Time\n"
    "# TYPE mw_seconds histogram\n"
    "mw_seconds_bucket{route=\"/chat\",le=\"0.1\"} 1\n"
    "mw_seconds_bucket{route=\"/chat\",le=\"+Inf\"} 1\n"
    "mw_seconds_sum{route=\"/chat\"} 0.5\n"
    "mw_seconds_count{route=\"/chat\"} 1\n";

static char *merged(const char *const *pages, const bool *counters_only, int n)
{
    struct mw_expo *e = mw_expo_new();
    for (int i = 0; i < n; i++)
        assert_int_equal(mw_expo_add(e, pages[i], strlen(pages[i]), counters_only[i]), 0);
    struct mw_buf b = { 0 };
    mw_expo_write(e, &b);
    mw_buf_putc(&b, 0);
    mw_expo_free(e);
    return b.p;
}

/* Same series add up; a worker-labelled series stays one per worker; a series only
 * one page has (a code that occurred on one worker) joins its family, in place. */
static void test_sum_of_two_pages(void **state)
{
    (void)state;
    const char *pages[] = { page_a, page_b };
    const bool co[] = { false, false };
    char *out = merged(pages, co, 2);
    assert_string_equal(out,
        "# HELP mw_up 1 while up\n"
        "# TYPE mw_up gauge\n"
        "mw_up{worker=\"0\"} 1\n"
        "mw_up{worker=\"1\"} 0\n"
        "# HELP mw_conns Connections\n"
        "# TYPE mw_conns gauge\n"
        "mw_conns 7\n"
        "# HELP mw_msgs_total Messages\n"
        "# TYPE mw_msgs_total counter\n"
        "mw_msgs_total{route=\"/chat\"} 15\n"
        "# HELP mw_errors_total Errors by code\n"
        "# TYPE mw_errors_total counter\n"
        "mw_errors_total{route=\"/chat\",code=\"bad message\"} 7\n"
        "# HELP mw_seconds Time\n"
        "# TYPE mw_seconds histogram\n"
        "mw_seconds_bucket{route=\"/chat\",le=\"0.1\"} 3\n"
        "mw_seconds_bucket{route=\"/chat\",le=\"+Inf\"} 4\n"
        "mw_seconds_sum{route=\"/chat\"} 0.75\n"
        "mw_seconds_count{route=\"/chat\"} 4\n");
    free(out);
}

/* What a worker that ended leaves: its counters and histograms, not its gauges. */
static void test_counters_only(void **state)
{
    (void)state;
    const char *pages[] = { page_a };
    const bool co[] = { true };
    char *out = merged(pages, co, 1);
    assert_null(strstr(out, "mw_up{"));
    assert_null(strstr(out, "mw_conns 3"));
    assert_non_null(strstr(out, "mw_msgs_total{route=\"/chat\"} 10\n"));
    assert_non_null(strstr(out, "mw_seconds_count{route=\"/chat\"} 3\n"));
    free(out);

    /* Added to a live page, it carries the counts of both incarnations. */
    const char *both[] = { page_b, page_a };
    const bool co2[] = { false, true };
    out = merged(both, co2, 2);
    assert_non_null(strstr(out, "mw_conns 4\n"));
    assert_non_null(strstr(out, "mw_up{worker=\"1\"} 0\n"));
    assert_null(strstr(out, "mw_up{worker=\"0\"}"));
    assert_non_null(strstr(out, "mw_msgs_total{route=\"/chat\"} 15\n"));
    free(out);
}

/* Counters beyond 2^53 stay exact; a bad line is skipped and counted. */
static void test_values_and_bad_lines(void **state)
{
    (void)state;
    struct mw_expo *e = mw_expo_new();
    const char *p = "# TYPE big_total counter\nbig_total 9007199254740993\n";
    assert_int_equal(mw_expo_add(e, p, strlen(p), false), 0);
    assert_int_equal(mw_expo_add(e, p, strlen(p), false), 0);
    const char *bad = "# TYPE big_total counter\nbig_total\nbig_total 2\n";
    assert_int_equal(mw_expo_add(e, bad, strlen(bad), false), 1);
    struct mw_buf b = { 0 };
    mw_expo_write(e, &b);
    mw_buf_putc(&b, 0);
    assert_string_equal(b.p, "# TYPE big_total counter\nbig_total 18014398509481988\n");
    mw_buf_free(&b);
    mw_expo_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sum_of_two_pages),
        cmocka_unit_test(test_counters_only),
        cmocka_unit_test(test_values_and_bad_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
