/* fuzz_broker_wire.c - the payload decoder of messages between nodes
 * (core/rooms/broker_wire.c): anything from Redis decodes or is refused; what decodes points
 * inside the payload, and encodes back to a payload that decodes to the same. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rooms/broker_wire.h"
#include "base/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void inside(const char *p, size_t len, const char *f, size_t flen)
{
    if (flen && (f < p || f + flen > p + len))
        abort();
}

static int same(const char *a, size_t al, const char *b, size_t bl)
{
    return al == bl && (!al || memcmp(a, b, al) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    struct mw_wire w, v;
    if (mw_wire_decode(p, size, &w) < 0)
        return 0;
    inside(p, size, w.node, w.node_len);
    inside(p, size, w.except, w.except_len);
    inside(p, size, w.subject, w.subject_len);
    inside(p, size, w.body, w.body_len);
    struct mw_buf b = { 0 };
    mw_wire_head(&b, &w);
    mw_buf_append(&b, w.body, w.body_len);
    if (mw_wire_decode(b.p, b.len, &v) < 0 || v.kind != w.kind || v.flags != w.flags ||
        !same(v.node, v.node_len, w.node, w.node_len) ||
        !same(v.except, v.except_len, w.except, w.except_len) ||
        !same(v.subject, v.subject_len, w.subject, w.subject_len) ||
        !same(v.body, v.body_len, w.body, w.body_len))
        abort();
    mw_buf_free(&b);
    return 0;
}
