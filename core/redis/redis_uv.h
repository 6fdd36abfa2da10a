/* redis_uv.h - hiredis's async contexts on the server's libuv loop.
 *
 * hiredis's own libuv adapter (adapters/libuv.h) is not used: it drops poll errors,
 * so a refused connect or a connection reset (Redis killed with unread input) left a
 * context deaf for good. This one hands such errors to hiredis, which then
 * disconnects. */
#ifndef MW_REDIS_UV_H
#define MW_REDIS_UV_H

struct redisAsyncContext;

/* Attaches ac to the default loop. 0, or -1 (ac is then not attached). The poll
 * handle is freed once hiredis cleans the context up. */
int mw__redis_uv_attach(struct redisAsyncContext *ac);

#endif
