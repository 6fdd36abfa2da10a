/* redis_uv.c - hiredis's async contexts on the loop (redis_uv.h). */
#include "redis/redis_uv.h"

#include <stdbool.h>
#include <stdlib.h>

#include <hiredis/async.h>
#include <uv.h>

#include "base/util.h"

struct poller {
    redisAsyncContext *ac; /* NULL once hiredis let go of it */
    uv_poll_t poll;
    int events;
    bool closing;
};

static void on_poll(uv_poll_t *h, int status, int events)
{
    struct poller *p = h->data;
    if (status < 0) {
        /* libuv stopped the watcher on POLLERR: a connect that failed, or a reset.
         * hiredis meets the error when it checks the connect or reads, and
         * disconnects (callbacks get NULL, then on_connect / on_disconnect). */
        if (p->ac && !(p->ac->c.flags & REDIS_CONNECTED))
            redisAsyncHandleWrite(p->ac);
        else if (p->ac)
            redisAsyncHandleRead(p->ac);
        if (p->ac && p->events) /* no error after all: watch again */
            uv_poll_start(&p->poll, p->events, on_poll);
        return;
    }
    if (p->ac && (events & UV_READABLE))
        redisAsyncHandleRead(p->ac);
    if (p->ac && (events & UV_WRITABLE))
        redisAsyncHandleWrite(p->ac);
}

static void poll_update(struct poller *p, int add, int del)
{
    p->events = (p->events | add) & ~del;
    if (p->events)
        uv_poll_start(&p->poll, p->events, on_poll);
    else
        uv_poll_stop(&p->poll);
}

static void ev_add_read(void *ud)
{
    poll_update(ud, UV_READABLE, 0);
}

static void ev_del_read(void *ud)
{
    poll_update(ud, 0, UV_READABLE);
}

static void ev_add_write(void *ud)
{
    poll_update(ud, UV_WRITABLE, 0);
}

static void ev_del_write(void *ud)
{
    poll_update(ud, 0, UV_WRITABLE);
}

static void on_poller_closed(uv_handle_t *h)
{
    free(h->data);
}

static void ev_cleanup(void *ud)
{
    struct poller *p = ud;
    if (p->closing) /* hiredis may clean up twice while freeing a context */
        return;
    p->closing = true;
    p->ac = NULL;
    uv_close((uv_handle_t *)&p->poll, on_poller_closed);
}

int mw__redis_uv_attach(redisAsyncContext *ac)
{
    struct poller *p = mw_calloc(1, sizeof *p);
    if (uv_poll_init(uv_default_loop(), &p->poll, ac->c.fd) != 0) {
        free(p);
        return -1;
    }
    p->poll.data = p;
    p->ac = ac;
    ac->ev.data = p;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    return 0;
}
