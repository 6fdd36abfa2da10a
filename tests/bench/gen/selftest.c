/* selftest.c - `mwbench selftest`: checks that events read in place (dscan) give the
 * same t and seq as the JSON walk (jscan) over the layouts servers write (keys in any
 * order, numbers gaining digits, the event's own seq before or after data, acks with
 * history, spaces), and times the read in place. Run by CTest. */
#include "selftest.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "dscan.h"
#include "jscan.h"

/* A chat:message event with the members in the order of `order` (letters: y type,
 * r room, f from, d data, s seq, m ts) and data's members in `dorder` (t, q seq,
 * p pad). `sp` puts a space after every colon. Returns its length. */
static int event(char *buf, size_t cap, const char *order, const char *dorder, int64_t t,
                 int64_t dseq, int64_t seq, const char *from, bool sp)
{
    char data[256];
    const char *c = sp ? ": " : ":";
    int dl = 0;
    data[dl++] = '{';
    for (const char *o = dorder; *o; o++) {
        if (o != dorder)
            data[dl++] = ',';
        if (*o == 't')
            dl += snprintf(data + dl, sizeof data - (size_t)dl, "\"t\"%s%" PRId64, c, t);
        else if (*o == 'q')
            dl += snprintf(data + dl, sizeof data - (size_t)dl, "\"seq\"%s%" PRId64, c, dseq);
        else
            dl += snprintf(data + dl, sizeof data - (size_t)dl,
                           "\"pad\"%s\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"", c);
    }
    data[dl++] = '}';
    data[dl] = '\0';
    int n = snprintf(buf, cap, "{");
    for (const char *o = order; *o; o++) {
        if (o != order)
            n += snprintf(buf + n, cap - (size_t)n, ",");
        switch (*o) {
        case 'y': n += snprintf(buf + n, cap - (size_t)n, "\"type\"%s\"chat:message\"", c); break;
        case 'r': n += snprintf(buf + n, cap - (size_t)n, "\"room\"%s\"chat-7\"", c); break;
        case 'f': n += snprintf(buf + n, cap - (size_t)n, "\"from\"%s\"%s\"", c, from); break;
        case 'd': n += snprintf(buf + n, cap - (size_t)n, "\"data\"%s%s", c, data); break;
        case 's': n += snprintf(buf + n, cap - (size_t)n, "\"seq\"%s%" PRId64, c, seq); break;
        case 'm': n += snprintf(buf + n, cap - (size_t)n, "\"ts\"%s1796667081576", c); break;
        }
    }
    n += snprintf(buf + n, cap - (size_t)n, "}");
    return n;
}

/* The JSON walk's answer, and the key places dscan learns from (as net.c does). */
static bool walk(const char *p, size_t n, int64_t *t, int64_t *seq, const char **type_key,
                 const char **t_key, const char **seq_key)
{
    struct js_iter it, dit;
    const char *k, *v, *data = NULL;
    size_t kl, vl, datal = 0;
    bool chat = false;
    *type_key = *t_key = *seq_key = NULL;
    *t = *seq = -1;
    if (js_iter_init(&it, p, n) < 0)
        return false;
    while (js_next(&it, &k, &kl, &v, &vl) > 0) {
        if (js_eq(k, kl, "type")) {
            chat = js_eq(v, vl, "chat:message");
            *type_key = k - 1;
        } else if (js_eq(k, kl, "data")) {
            data = v;
            datal = vl;
        }
    }
    if (!chat || !data || js_iter_init(&dit, data, datal) < 0)
        return false;
    while (js_next(&dit, &k, &kl, &v, &vl) > 0) {
        if (js_eq(k, kl, "t") && js_int(v, vl, t))
            *t_key = k - 1;
        else if (js_eq(k, kl, "seq") && js_int(v, vl, seq))
            *seq_key = k - 1;
    }
    return *t >= 0 && *seq >= 0;
}

static int failures;

static void expect(bool ok, const char *what, const char *ev)
{
    if (!ok) {
        failures++;
        fprintf(stderr, "selftest: FAILED: %s: %s\n", what, ev);
    }
}

/* Feeds events of one layout with growing numbers: every one dscan reads must agree
 * with the walk; the ones it cannot read go to the walk, which re-teaches it. */
static void layout(const char *order, const char *dorder, bool sp)
{
    struct dscan d = { 0 };
    char ev[1024];
    static const int64_t ts[] = { 7, 99, 1000, 123456789, 5706754994, 99999999999, 100000000000,
                                  123456789012345 };
    static const int64_t seqs[] = { 1, 9, 10, 4999, 10000, 99999999, 100000000, 1234567890123 };
    static const char *froms[] = { "u1", "u10", "u1000", "anon-7f3a" };
    uint64_t hits = 0;
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 8; j++)
            for (int f = 0; f < 4; f++) {
                int n = event(ev, sizeof ev, order, dorder, ts[i], seqs[j], seqs[(j + 3) % 8],
                              froms[f], sp);
                int64_t t = 0, seq = 0, wt, wseq;
                const char *tk, *sk, *yk;
                expect(walk(ev, (size_t)n, &wt, &wseq, &yk, &tk, &sk), "walk", ev);
                expect(wt == ts[i] && wseq == seqs[j], "walk values", ev);
                if (ds_match(&d, ev, (size_t)n, &t, &seq)) {
                    hits++;
                    expect(t == wt && seq == wseq, "read in place differs from the walk", ev);
                } else {
                    ds_learn(&d, ev, (size_t)n, yk, tk, sk);
                    if (!sp) {
                        expect(d.learned, "not learned", ev);
                        expect(ds_match(&d, ev, (size_t)n, &t, &seq) && t == wt && seq == wseq,
                               "no match right after learning", ev);
                    }
                }
            }
    if (!sp)
        expect(hits > 8 * 8 * 4 / 2, "read in place for fewer than half the events", order);
    else
        expect(!hits && !d.learned, "learned a layout with spaces", order);
}

/* What must never be read as a delivery: acks (with history holding chat:message
 * events), other events, truncated events. */
static void not_deliveries(void)
{
    struct dscan d = { 0 };
    char ev[1024], bad[2048];
    int64_t t, seq, wt, wseq;
    const char *tk, *sk, *yk;
    int n = event(ev, sizeof ev, "drfysm", "qtp", 5706754994, 77, 4999, "u1", false);
    walk(ev, (size_t)n, &wt, &wseq, &yk, &tk, &sk);
    ds_learn(&d, ev, (size_t)n, yk, tk, sk);
    expect(ds_match(&d, ev, (size_t)n, &t, &seq), "learned", ev);
    int b = snprintf(bad, sizeof bad, "{\"id\":0,\"data\":{\"room\":\"chat-7\",\"history\":[%s]},"
                     "\"type\":\"ack\"}", ev);
    expect(!ds_match(&d, bad, (size_t)b, &t, &seq), "an ack with history read as a delivery", bad);
    b = snprintf(bad, sizeof bad, "{\"data\":{\"seq\":77,\"t\":5706754994,\"pad\":\"x\"},"
                 "\"type\":\"presence:join\"}");
    expect(!ds_match(&d, bad, (size_t)b, &t, &seq), "another type read as a delivery", bad);
    for (int cut = 1; cut < n; cut++)
        if (ds_match(&d, ev, (size_t)(n - cut), &t, &seq))
            expect(t == wt && seq == wseq, "a truncated event read wrong", ev);
    /* The event's own seq exactly where data's seq was learned, data without one:
     * not a delivery (the walk says so), and the event's seq must not be taken. */
    struct dscan e = { 0 };
    static const char one[] = "{\"type\":\"chat:message\",\"data\":{\"t\":12,\"seq\":2,\"pad\":\"x\"},"
                              "\"seq\":3}";
    static const char two[] = "{\"type\":\"chat:message\",\"data\":{\"t\":1},\"seq\":3,"
                              "\"pad\":\"xxxxxx\"}";
    walk(one, sizeof one - 1, &wt, &wseq, &yk, &tk, &sk);
    ds_learn(&e, one, sizeof one - 1, yk, tk, sk);
    expect(e.learned && strstr(two, "\"seq\"") - two == sk - one, "test layout", two);
    expect(!walk(two, sizeof two - 1, &wt, &wseq, &yk, &tk, &sk), "walk of data without seq", two);
    expect(!ds_match(&e, two, sizeof two - 1, &t, &seq), "the event's seq taken for data's", two);
}

/* Nanoseconds per event read in place, for the record (not asserted). */
static double time_match(void)
{
    struct dscan d = { 0 };
    char ev[1024];
    int64_t t = 0, seq = 0, wt, wseq, sum = 0;
    const char *tk, *sk, *yk;
    int n = event(ev, sizeof ev, "dfrysm", "qtp", 5706754994, 4999, 4999, "u1", false);
    walk(ev, (size_t)n, &wt, &wseq, &yk, &tk, &sk);
    ds_learn(&d, ev, (size_t)n, yk, tk, sk);
    uint64_t t0 = now_ns();
    const int rounds = 2000000;
    for (int i = 0; i < rounds; i++) {
        __asm__ volatile("" : : "r"(ev) : "memory");
        if (ds_match(&d, ev, (size_t)n, &t, &seq))
            sum += t + seq;
    }
    uint64_t el = now_ns() - t0;
    expect(sum == (int64_t)rounds * (wt + wseq), "timing loop", ev);
    return (double)el / rounds;
}

int selftest_run(void)
{
    static const char *orders[] = { "yrfdsm", "yrfsmd", "drfysm", "dfrysm", "mdsyfr", "sdy" };
    static const char *dorders[] = { "tqp", "qtp", "ptq", "pqt", "tpq" };
    for (size_t i = 0; i < sizeof orders / sizeof *orders; i++)
        for (size_t j = 0; j < sizeof dorders / sizeof *dorders; j++) {
            layout(orders[i], dorders[j], false);
            layout(orders[i], dorders[j], true);
        }
    not_deliveries();
    double ns = time_match();
    printf("selftest: %s; an event read in place in %.1f ns\n", failures ? "FAILED" : "ok", ns);
    return failures ? 1 : 0;
}
