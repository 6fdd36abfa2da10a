/* test_sendq.c - the send queue (sendq.c) without any socket: ring growth, partial
 * writes, the layout of a write (iovecs and runs of small frames copied together), the
 * coalescible-drop policy, discard on close. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "base/msg.h"
#include "net/sendq.h"

static struct mw_msg *text(const char *s, unsigned flags)
{
    return mw_msg_new(MW_OP_TEXT, s, strlen(s), flags);
}

/* Pushes a frame and drops the caller's reference: the queue holds the only one. */
static void push(struct mw_sendq *q, const char *s, unsigned flags)
{
    struct mw_msg *m = text(s, flags);
    mw_sendq_push(q, m);
    mw_msg_decref(m);
}

/* The ring grows past its first capacity and keeps the order, also wrapped. */
static void test_ring_grows_in_order(void **state)
{
    (void)state;
    struct mw_sendq q = { 0 };
    char s[8];
    for (int i = 0; i < 5; i++) { /* move head away from 0 */
        push(&q, "x", 0);
        mw_sendq_consume(&q, 3);
    }
    for (int i = 0; i < 20; i++) {
        snprintf(s, sizeof s, "%02d", i);
        push(&q, s, 0);
    }
    assert_int_equal(q.len, 20);
    assert_int_equal(q.bytes, 20 * 4);
    for (int i = 0; i < 20; i++) {
        snprintf(s, sizeof s, "%02d", i);
        assert_memory_equal(mw_sendq_at(&q, (uint32_t)i)->data + 2, s, 2);
    }
    mw_sendq_clear(&q);
    assert_int_equal(q.bytes, 0);
    mw_sendq_trim(&q);
    assert_null(q.ring);
}

/* A write that stops inside a frame: the rest of that frame comes first next time,
 * copied into a run or pointed at. */
static void test_partial_writes(void **state)
{
    (void)state;
    struct mw_sendq q = { 0 };
    unsigned char buf[64];
    struct iovec iov[4];
    size_t n;
    push(&q, "hello", 0); /* 7 bytes framed */
    push(&q, "world!", 0); /* 8 */
    assert_int_equal(q.bytes, 15);
    assert_int_equal(mw_sendq_consume(&q, 4), 0);
    assert_true(mw_sendq_started(&q));
    assert_int_equal(q.bytes, 11);
    /* copied: one piece, the head's rest first */
    assert_int_equal(mw_sendq_iov(&q, iov, 4, 64, buf, sizeof buf, &n), 1);
    assert_int_equal(n, 11);
    assert_ptr_equal(iov[0].iov_base, buf);
    assert_int_equal(iov[0].iov_len, 11);
    assert_memory_equal(buf, "llo", 3);
    assert_int_equal(buf[3], 0x81);
    assert_memory_equal(buf + 5, "world!", 6);
    /* no room to copy: pointed at */
    assert_int_equal(mw_sendq_iov(&q, iov, 4, 64, buf, 0, &n), 2);
    assert_int_equal(n, 11);
    assert_int_equal(iov[0].iov_len, 3);
    assert_memory_equal(iov[0].iov_base, "llo", 3);
    assert_ptr_equal(iov[1].iov_base, mw_sendq_at(&q, 1)->data);
    assert_int_equal(mw_sendq_consume(&q, 5), 1); /* "llo" + 2 header bytes */
    assert_int_equal(q.off, 2);
    assert_int_equal(mw_sendq_consume(&q, 6), 1);
    assert_int_equal(q.len, 0);
    assert_int_equal(q.bytes, 0);
    assert_false(mw_sendq_started(&q));
    mw_sendq_trim(&q);
}

/* A write stops before the frame that would pass max, but always takes the first
 * frame whole, however big; iovecs stop at their count (a run counts as one). */
static void test_write_bounds(void **state)
{
    (void)state;
    struct mw_sendq q = { 0 };
    unsigned char buf[64];
    struct iovec iov[2];
    size_t n;
    push(&q, "0123456789", 0); /* 12 */
    push(&q, "abc", 0);        /* 5 */
    push(&q, "de", 0);         /* 4 */
    assert_int_equal(mw_sendq_iov(&q, iov, 2, 4, buf, sizeof buf, &n), 1);
    assert_int_equal(n, 12);
    assert_int_equal(mw_sendq_iov(&q, iov, 2, 17, buf, sizeof buf, &n), 1);
    assert_int_equal(n, 17);
    assert_int_equal(mw_sendq_iov(&q, iov, 2, 1000, buf, sizeof buf, &n), 1);
    assert_int_equal(n, 21);
    assert_memory_equal(buf + 2, "0123456789", 10);
    assert_memory_equal(buf + 14, "abc", 3);
    assert_memory_equal(buf + 19, "de", 2);
    /* without scratch: one iovec a frame, as many as fit */
    assert_int_equal(mw_sendq_iov(&q, iov, 2, 1000, buf, 0, &n), 2);
    assert_int_equal(n, 17);
    /* scratch for the first two only: the third is pointed at */
    assert_int_equal(mw_sendq_iov(&q, iov, 2, 1000, buf, 17, &n), 2);
    assert_int_equal(n, 21);
    assert_int_equal(iov[0].iov_len, 17);
    assert_ptr_equal(iov[1].iov_base, mw_sendq_at(&q, 2)->data);
    assert_int_equal(q.len, 3); /* nothing consumed */
    mw_sendq_clear(&q);
    mw_sendq_trim(&q);
}

/* A frame alone and frames above MW_SENDQ_COPY_MAX are written from where they lie;
 * small frames around a big one make runs of their own. */
static void test_runs_and_big_frames(void **state)
{
    (void)state;
    struct mw_sendq q = { 0 };
    static unsigned char buf[16384];
    static char big[MW_SENDQ_COPY_MAX + 100];
    struct iovec iov[8];
    size_t n;
    memset(big, 'B', sizeof big - 1);
    push(&q, "one", 0);
    assert_int_equal(mw_sendq_iov(&q, iov, 8, 1 << 20, buf, sizeof buf, &n), 1);
    assert_ptr_equal(iov[0].iov_base, mw_sendq_at(&q, 0)->data); /* alone: no copy */
    push(&q, "two", 0);
    push(&q, big, 0);
    push(&q, "three", 0);
    push(&q, "four", 0);
    push(&q, "five", 0);
    push(&q, big, 0);
    push(&q, "six", 0);
    assert_int_equal(mw_sendq_iov(&q, iov, 8, 1 << 20, buf, sizeof buf, &n), 5);
    assert_int_equal(n, q.bytes);
    assert_int_equal(iov[0].iov_len, 10);                          /* one two */
    assert_ptr_equal(iov[1].iov_base, mw_sendq_at(&q, 2)->data);   /* big */
    assert_int_equal(iov[2].iov_len, 7 + 6 + 6);                   /* three four five */
    assert_ptr_equal(iov[3].iov_base, mw_sendq_at(&q, 6)->data);   /* big */
    assert_ptr_equal(iov[4].iov_base, mw_sendq_at(&q, 7)->data);   /* six, alone at the end */
    assert_memory_equal((unsigned char *)iov[2].iov_base + 2, "three", 5);
    assert_memory_equal((unsigned char *)iov[2].iov_base + 9, "four", 4);
    /* the bytes, laid end to end, are the queue's */
    size_t at = 0;
    for (uint32_t i = 0; i < q.len; i++) {
        struct mw_msg *m = mw_sendq_at(&q, i);
        size_t left = m->len;
        for (int k = 0; left; ) {
            size_t base = 0, a = at;
            for (k = 0; a >= base + iov[k].iov_len; k++)
                base += iov[k].iov_len;
            size_t take = iov[k].iov_len - (a - base);
            if (take > left)
                take = left;
            assert_memory_equal((unsigned char *)iov[k].iov_base + (a - base),
                                m->data + (m->len - left), take);
            left -= take;
            at += take;
        }
    }
    assert_int_equal(at, n);
    mw_sendq_clear(&q);
    mw_sendq_trim(&q);
}

/* `slow_consumer: drop`: coalescible frames go, oldest first, only as many as needed;
 * never the partly written head; others are kept in order. */
static void test_drop_coalescible(void **state)
{
    (void)state;
    struct mw_sendq q = { 0 };
    push(&q, "t1", MW_MSG_COALESCE); /* 4 bytes each */
    push(&q, "m1", 0);
    push(&q, "t2", MW_MSG_COALESCE);
    push(&q, "t3", MW_MSG_COALESCE);
    push(&q, "m2", 0);
    assert_int_equal(q.bytes, 20);
    mw_sendq_consume(&q, 1); /* t1 started */
    assert_int_equal(mw_sendq_drop_coalescible(&q, 20, 5), 1); /* t2 is enough: 19 -> 15 */
    push(&q, "t4", MW_MSG_COALESCE);
    assert_int_equal(mw_sendq_drop_coalescible(&q, 20, 9), 2); /* t3, t4: 19 -> 11 */
    assert_int_equal(q.len, 3);
    assert_int_equal(q.bytes, 11);
    assert_memory_equal(mw_sendq_at(&q, 0)->data + 2, "t1", 2);
    assert_memory_equal(mw_sendq_at(&q, 1)->data + 2, "m1", 2);
    assert_memory_equal(mw_sendq_at(&q, 2)->data + 2, "m2", 2);
    assert_int_equal(mw_sendq_drop_coalescible(&q, 12, 5), 0); /* only t1 is left: started */
    mw_sendq_clear(&q);
    mw_sendq_trim(&q);
}

/* Closing a slow consumer discards what has not started to go out; a partly written
 * frame stays so that the stream is not cut mid-frame. */
static void test_discard_keeps_started_head(void **state)
{
    (void)state;
    struct mw_sendq q = { 0 };
    push(&q, "aaaa", 0);
    push(&q, "bbbb", 0);
    push(&q, "cccc", 0);
    assert_int_equal(mw_sendq_discard(&q), 3);
    assert_int_equal(q.bytes, 0);
    push(&q, "aaaa", 0);
    push(&q, "bbbb", 0);
    mw_sendq_consume(&q, 2);
    assert_int_equal(mw_sendq_discard(&q), 1);
    assert_int_equal(q.len, 1);
    assert_int_equal(q.bytes, 4);
    mw_sendq_clear(&q);
    mw_sendq_trim(&q);
}

/* A frame shared by many queues is freed with its last reference. */
static void test_shared_frames(void **state)
{
    (void)state;
    struct mw_sendq a = { 0 }, b = { 0 };
    struct mw_msg *m = text("shared", 0);
    mw_sendq_push(&a, m);
    mw_sendq_push(&b, m);
    assert_int_equal(m->refs, 3);
    mw_sendq_consume(&a, m->len);
    assert_int_equal(m->refs, 2);
    mw_sendq_clear(&b);
    assert_int_equal(m->refs, 1);
    mw_msg_decref(m);
    mw_sendq_trim(&a);
    mw_sendq_trim(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ring_grows_in_order),
        cmocka_unit_test(test_partial_writes),
        cmocka_unit_test(test_write_bounds),
        cmocka_unit_test(test_runs_and_big_frames),
        cmocka_unit_test(test_drop_coalescible),
        cmocka_unit_test(test_discard_keeps_started_head),
        cmocka_unit_test(test_shared_frames),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
