/* heartbeat.c - pings for quiet connections and drops for dead ones, spread over time
 * (heartbeat.h). */
#include "net/heartbeat.h"

#include <inttypes.h>
#include <stdbool.h>

#include <uv.h>

#include "net/auth.h"
#include "net/conn.h"
#include "base/log.h"
#include "base/msg.h"
#include "base/context.h"
#include "base/util.h"

static uv_timer_t timer;
static bool timer_ready, stopped;
static struct mw_heartbeat_pace pace;
static uint64_t interval_ms, quiet_ms, deadline_ms;
static struct mw_msg *ping_frame; /* one frame shared by every connection; any pong counts */

uint64_t mw_heartbeat_period_ms(uint64_t interval, uint64_t timeout)
{
    uint64_t p = (interval < timeout ? interval : timeout) / 4;
    return p > 50 ? p : 50;
}

uint64_t mw_heartbeat_quiet_ms(uint64_t interval, uint64_t timeout)
{
    return (interval < timeout ? interval : timeout) / 2;
}

uint32_t mw_heartbeat_budget(struct mw_heartbeat_pace *p, uint32_t n, uint64_t now_ms)
{
    uint64_t elapsed = now_ms > p->last_ms ? now_ms - p->last_ms : 0;
    p->last_ms = now_ms;
    if (elapsed >= p->period_ms) { /* a whole round is due (the loop was held up) */
        p->carry = 0;
        return n;
    }
    uint64_t acc = (uint64_t)n * elapsed + p->carry;
    uint64_t due = acc / p->period_ms;
    p->carry = acc % p->period_ms;
    if (due >= n) {
        p->carry = 0;
        return n;
    }
    return (uint32_t)due;
}

uint64_t mw_heartbeat_slice_ms(const struct mw_heartbeat_pace *p, uint32_t n)
{
    uint64_t s = n ? p->period_ms / n : p->period_ms;
    if (s < MW_HEARTBEAT_SLICE_MS)
        s = MW_HEARTBEAT_SLICE_MS;
    return s < p->period_ms ? s : p->period_ms;
}

void mw_heartbeat_attach(struct mw_conn *c)
{
    /* Its own moment in every interval, anywhere in it: connections opened together
     * are pinged apart. (Modular arithmetic: fine on a young monotonic clock.) */
    if (interval_ms)
        c->last_ping_ms = mw_now_ms() - mw_random_u64() % interval_ms;
}

/* One connection's turn: give back what it no longer needs; drop it when it has been
 * silent for interval + timeout; at its moment (once per interval) ping it if it has
 * been quiet for quiet_ms. Deciding at its own moment rather than when it went
 * quiet is what keeps connections that went quiet together from being pinged
 * together, and their pongs from keeping them together afterwards. */
static void visit(struct mw_conn *c, void *arg)
{
    uint64_t now = *(const uint64_t *)arg;
    mw_conn_trim(c, now);
    if (!c->tx || !mw_conn_is_open(c))
        return;
    if (c->auth_wait_ms || c->auth_exp_ms) { /* its token's expiry, its auth.timeout */
        mw_auth_sweep(c, now, mw_wall_ms());
        if (!mw_conn_is_open(c))
            return;
    }
    uint64_t idle = now > c->last_rx_ms ? now - c->last_rx_ms : 0;
    if (idle >= deadline_ms) {
        mw_srv.heartbeat_timeouts++;
        mw_log_info("heartbeat timeout", "conn=%s user=%s idle_ms=%" PRIu64, c->id,
                    c->user->id, idle);
        mw_conn_kill(c, "heartbeat timeout");
        return;
    }
    if (now - c->last_ping_ms < interval_ms)
        return; /* not its moment yet */
    c->last_ping_ms += interval_ms;
    if (now - c->last_ping_ms >= interval_ms)
        c->last_ping_ms = now; /* the loop was held up: its moment is now */
    if (idle >= quiet_ms) {
        c->ping_us = mw_now_us(); /* the pong's round trip (server.c) */
        mw_conn_send(c, ping_frame);
    }
}

uint32_t mw_heartbeat_slice(uint64_t now_ms)
{
    return mw_conn_walk(mw_heartbeat_budget(&pace, mw_conn_count(), now_ms), visit, &now_ms);
}

static void on_slice(uv_timer_t *t)
{
    mw_heartbeat_slice(mw_now_ms());
    if (!stopped)
        uv_timer_start(t, on_slice, mw_heartbeat_slice_ms(&pace, mw_conn_count()), 0);
}

void mw_heartbeat_start(uint64_t interval, uint64_t timeout)
{
    interval_ms = interval;
    quiet_ms = mw_heartbeat_quiet_ms(interval, timeout);
    deadline_ms = interval + timeout;
    pace = (struct mw_heartbeat_pace){ mw_heartbeat_period_ms(interval, timeout), mw_now_ms(), 0 };
    if (!ping_frame)
        ping_frame = mw_msg_new(MW_OP_PING, MW_HEARTBEAT_PING, sizeof MW_HEARTBEAT_PING - 1,
                                MW_MSG_CONTROL);
    if (!timer_ready)
        uv_timer_init(uv_default_loop(), &timer);
    timer_ready = true;
    stopped = false;
    uv_timer_start(&timer, on_slice, mw_heartbeat_slice_ms(&pace, mw_conn_count()), 0);
}

void mw_heartbeat_stop(void)
{
    stopped = true;
    if (timer_ready)
        uv_timer_stop(&timer);
}

void mw_heartbeat_close(void)
{
    mw_heartbeat_stop();
    if (timer_ready && !uv_is_closing((uv_handle_t *)&timer))
        uv_close((uv_handle_t *)&timer, NULL);
    timer_ready = false;
    if (ping_frame)
        mw_msg_decref(ping_frame);
    ping_frame = NULL;
}
