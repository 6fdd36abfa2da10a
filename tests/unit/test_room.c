/* test_room.c - room membership, the user-level presence index, fan-out and history.
 *
 * Connections here have a transport that writes nothing, so the room and conn modules
 * run without a network; queued frames are inspected directly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "net/conn.h"
#include "base/msg.h"
#include "rooms/room.h"

static int keep_flush(struct mw_conn *c)
{
    (void)c;
    return 0; /* the frames stay queued for the test to see */
}

static void gone_abort(struct mw_conn *c)
{
    mw_conn_transport_gone(c);
}

static const struct mw_transport keep = { .name = "keep", .flush = keep_flush, .abort = gone_abort };
static int tx_object;

static struct mw_conn *conn(const char *user)
{
    return mw_conn_new(&keep, &tx_object, NULL, user, "127.0.0.1");
}

static void leave_all(struct mw_conn *c)
{
    bool freed;
    while (c->nrooms)
        mw_room_leave(c->rooms[c->nrooms - 1], &freed);
}

static void drop(struct mw_conn *c)
{
    leave_all(c);
    mw_conn_drop(c);
}

static void test_join_leave_presence_is_user_level(void **state)
{
    (void)state;
    struct mw_conn *tab1 = conn("ana"), *tab2 = conn("ana"), *bob = conn("bob");
    bool first, already, freed;

    struct mw_member *m1 = mw_room_join(tab1, "r", "{\"name\":\"Ana\"}", &first, &already);
    assert_true(first);
    assert_false(already);
    struct mw_room *r = m1->room;
    assert_ptr_equal(mw_room_find("r"), r);

    struct mw_member *m2 = mw_room_join(tab2, "r", NULL, &first, &already);
    assert_false(first); /* same user, second connection */
    assert_int_equal(r->nmembers, 2);
    assert_int_equal(r->presence.len, 1);
    assert_int_equal(m2->presence->conns, 2);
    assert_string_equal(m2->presence->meta_json, "{\"name\":\"Ana\"}");

    mw_room_join(bob, "r", NULL, &first, &already);
    assert_true(first);
    assert_int_equal(r->presence.len, 2);

    assert_false(mw_room_leave(m1, &freed)); /* ana still has tab2 */
    assert_false(freed);
    assert_int_equal(r->presence.len, 2);
    assert_true(mw_room_leave(m2, &freed)); /* ana's last connection */
    assert_int_equal(r->presence.len, 1);
    assert_null(mw_room_member(tab1, "r"));
    assert_non_null(mw_room_member(bob, "r"));

    drop(bob); /* last member and no history: the room goes away */
    assert_null(mw_room_find("r"));
    drop(tab1);
    drop(tab2);
}

static void test_join_twice_is_one_membership(void **state)
{
    (void)state;
    struct mw_conn *c = conn("u");
    bool first, already;
    struct mw_member *a = mw_room_join(c, "r", NULL, &first, &already);
    struct mw_member *b = mw_room_join(c, "r", "{\"name\":\"U\"}", &first, &already);
    assert_ptr_equal(a, b);
    assert_true(already);
    assert_false(first);
    assert_int_equal(c->nrooms, 1);
    assert_int_equal(a->room->nmembers, 1);
    assert_int_equal(a->presence->conns, 1);
    assert_string_equal(a->presence->meta_json, "{\"name\":\"U\"}");
    drop(c);
}

/* Swap-removal must fix the moved member's indices in both arrays. */
static void test_leave_from_middle_keeps_indices(void **state)
{
    (void)state;
    struct mw_conn *c[4];
    bool first, already, freed;
    const char *users[] = { "a", "b", "c", "d" };
    for (int i = 0; i < 4; i++) {
        c[i] = conn(users[i]);
        mw_room_join(c[i], "x", NULL, &first, &already);
        mw_room_join(c[i], "y", NULL, &first, &already);
    }
    struct mw_room *x = mw_room_find("x");
    mw_room_leave(mw_room_member(c[1], "x"), &freed);
    mw_room_leave(mw_room_member(c[0], "y"), &freed);
    for (uint32_t i = 0; i < x->nmembers; i++)
        assert_int_equal(x->members[i]->room_idx, i);
    for (int k = 0; k < 4; k++)
        for (uint32_t i = 0; i < c[k]->nrooms; i++) {
            assert_int_equal(c[k]->rooms[i]->conn_idx, i);
            assert_ptr_equal(c[k]->rooms[i]->conn, c[k]);
        }
    assert_int_equal(x->nmembers, 3);
    assert_null(mw_room_member(c[1], "x"));
    assert_non_null(mw_room_member(c[1], "y"));
    for (int i = 0; i < 4; i++)
        drop(c[i]);
    assert_null(mw_room_find("x"));
    assert_null(mw_room_find("y"));
}

/* One frame, many references: a broadcast never copies per recipient. */
static void test_broadcast_shares_one_frame(void **state)
{
    (void)state;
    struct mw_conn *a = conn("a"), *b1 = conn("b"), *b2 = conn("b"), *c = conn("c");
    bool first, already;
    struct mw_conn *all[] = { a, b1, b2, c };
    for (int i = 0; i < 4; i++)
        mw_room_join(all[i], "r", NULL, &first, &already);
    struct mw_room *r = mw_room_find("r");
    struct mw_msg *m = mw_msg_new(MW_OP_TEXT, "{\"x\":1}", 7, 0);

    assert_int_equal(mw_room_broadcast(r, m, NULL, NULL), 4);
    assert_int_equal(m->refs, 5);
    assert_int_equal(mw_room_broadcast(r, m, a, NULL), 3);
    assert_int_equal(mw_room_broadcast(r, m, NULL, b1->user), 2); /* both of b's tabs skipped */
    assert_int_equal(a->q.len, 2);
    assert_int_equal(b1->q.len, 2);
    assert_int_equal(c->q.len, 3);
    assert_ptr_equal(mw_sendq_at(&c->q, 0), m);
    assert_int_equal(c->q.bytes, 3 * m->len);
    for (int i = 0; i < 4; i++)
        drop(all[i]);
    assert_int_equal(m->refs, 1); /* freeing the connections released their references */
    mw_msg_decref(m);
}

static void test_history_ring_keeps_newest_and_room(void **state)
{
    (void)state;
    struct mw_conn *c = conn("u");
    bool first, already;
    mw_room_join(c, "h", NULL, &first, &already);
    struct mw_room *r = mw_room_find("h");
    for (int i = 0; i < 5; i++) {
        struct mw_msg *m = mw_msg_new(MW_OP_TEXT, "e", 1, 0);
        uint64_t seq = mw_room_next_seq(r);
        assert_int_equal(seq, (uint64_t)i + 1);
        mw_room_history_push(r, m, seq, 1000 + (uint64_t)i, 3);
        mw_msg_decref(m);
    }
    assert_int_equal(r->hlen, 3);
    assert_int_equal(r->hist[r->hhead].seq, 3);
    assert_int_equal(r->hist[(r->hhead + 2) % r->hcap].seq, 5);
    drop(c);
    /* Everyone left, but the history keeps the room (and its seq) alive. */
    r = mw_room_find("h");
    assert_non_null(r);
    assert_int_equal(r->seq, 5);
    mw_room_free_all();
    assert_null(mw_room_find("h"));
}

/* Rooms without members must not keep history forever: the sweep expires it by the
 * route's ttl, or after the idle period without one, and frees the room. */
static void test_sweep_frees_idle_rooms_with_history(void **state)
{
    (void)state;
    struct mw_conn *c = conn("u");
    bool first, already;
    mw_room_join(c, "keep", NULL, &first, &already);
    mw_room_join(c, "ttl", NULL, &first, &already);
    struct mw_room *keep = mw_room_find("keep"), *ttl = mw_room_find("ttl");
    struct mw_msg *m = mw_msg_new(MW_OP_TEXT, "e", 1, 0);
    mw_room_history_push(keep, m, mw_room_next_seq(keep), 1000, 10);
    ttl->hist_ttl_ms = 500;
    mw_room_history_push(ttl, m, mw_room_next_seq(ttl), 1000, 10);
    mw_msg_decref(m);

    assert_int_equal(mw_room_sweep(5000, 0, 60000), 0); /* members: nothing happens */
    drop(c);
    uint64_t idle_at = keep->idle_since_ms;
    assert_true(idle_at > 0);
    assert_int_equal(mw_room_sweep(1400, idle_at, 60000), 0);     /* within the ttl */
    assert_int_equal(mw_room_sweep(1600, idle_at, 60000), 1);     /* ttl passed: "ttl" freed */
    assert_null(mw_room_find("ttl"));
    assert_non_null(mw_room_find("keep"));                        /* no ttl: kept while idle */
    assert_int_equal(mw_room_sweep(1600, idle_at + 60000, 60000), 1);
    assert_null(mw_room_find("keep"));
}

/* A frame that does not fit the send queue closes the connection (slow consumer)
 * unless the route drops coalescible frames first. */
static void test_drop_policy_makes_room_with_coalescible_frames(void **state)
{
    (void)state;
    mw_conn_limits.send_queue = 100;
    struct mw_conn *c = conn("slow");
    c->slow_drop = true;
    struct mw_msg *typing = mw_msg_new(MW_OP_TEXT, "0123456789012345678901234567890123456789", 40, MW_MSG_COALESCE);
    struct mw_msg *chat = mw_msg_new(MW_OP_TEXT, "0123456789012345678901234567890123456789", 40, 0);
    assert_int_equal(mw_conn_send(c, typing), 0);
    assert_int_equal(mw_conn_send(c, chat), 0);
    assert_int_equal(mw_conn_send(c, chat), 0); /* 126 > 100: the typing frame goes */
    assert_int_equal(c->q.len, 2);
    assert_ptr_equal(mw_sendq_at(&c->q, 0), chat);
    assert_int_equal(c->q.bytes, 2 * chat->len);
    drop(c);
    mw_msg_decref(typing);
    mw_msg_decref(chat);
    mw_conn_limits.send_queue = 1 << 20;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_join_leave_presence_is_user_level),
        cmocka_unit_test(test_join_twice_is_one_membership),
        cmocka_unit_test(test_leave_from_middle_keeps_indices),
        cmocka_unit_test(test_broadcast_shares_one_frame),
        cmocka_unit_test(test_history_ring_keeps_newest_and_room),
        cmocka_unit_test(test_drop_policy_makes_room_with_coalescible_frames),
        cmocka_unit_test(test_sweep_frees_idle_rooms_with_history),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
