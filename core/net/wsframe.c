/* wsframe.c - a client's WebSocket frames, parsed and checked as they arrive. */
#include "net/wsframe.h"

#include <stdlib.h>
#include <string.h>

#include "base/util.h"

#define CTL_MAX 125

bool mw_ws_close_code_valid(int code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
           (code >= 3000 && code <= 4999);
}

/* Header bytes the frame needs, from what is there (at least 2 bytes). */
static size_t header_size(const struct mw_wsrx *rx)
{
    size_t len7 = rx->hdr[1] & 0x7f;
    return 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + ((rx->hdr[1] & 0x80) ? 4 : 0);
}

static void unmask(struct mw_wsrx *rx, unsigned char *p, size_t n)
{
    size_t i = 0;
    if (n >= 16) { /* eight bytes at a time, the mask rotated to where we are */
        unsigned char m8[8];
        for (int k = 0; k < 8; k++)
            m8[k] = rx->mask[(rx->midx + k) & 3];
        uint64_t m;
        memcpy(&m, m8, 8);
        for (; i + 8 <= n; i += 8) {
            uint64_t w;
            memcpy(&w, p + i, 8);
            w ^= m;
            memcpy(p + i, &w, 8);
        }
    }
    for (; i < n; i++)
        p[i] ^= rx->mask[(rx->midx + i) & 3];
    rx->midx = (uint8_t)((rx->midx + n) & 3);
}

#define FAIL(code, text) \
    do {                 \
        *why = (text);   \
        return (code);   \
    } while (0)

/* A complete header in rx->hdr: checks it and sets up the frame. */
static int start_frame(struct mw_wsrx *rx, uint64_t max, const char **why)
{
    unsigned char b0 = rx->hdr[0], b1 = rx->hdr[1];
    int op = b0 & 0x0f, rsv = b0 & 0x70;
    size_t len7 = b1 & 0x7f;
    uint64_t len = len7;
    rx->fin = b0 & 0x80;
    rx->op = (uint8_t)op;
    if (!(b1 & 0x80))
        FAIL(MW_WS_PROTOCOL_ERROR, "unmasked frame");
    if (len7 == 126) {
        len = (uint64_t)rx->hdr[2] << 8 | rx->hdr[3];
    } else if (len7 == 127) {
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | rx->hdr[2 + i];
        if (len >> 63)
            FAIL(MW_WS_PROTOCOL_ERROR, "frame length over 2^63");
    }
    memcpy(rx->mask, rx->hdr + header_size(rx) - 4, 4);
    rx->midx = 0;
    rx->left = len;
    if (op & 0x8) {
        if (op != MW_WS_CLOSE && op != MW_WS_PING && op != MW_WS_PONG)
            FAIL(MW_WS_PROTOCOL_ERROR, "reserved opcode");
        if (rsv)
            FAIL(MW_WS_PROTOCOL_ERROR, "reserved bits set");
        if (!rx->fin)
            FAIL(MW_WS_PROTOCOL_ERROR, "fragmented control frame");
        if (len > CTL_MAX)
            FAIL(MW_WS_PROTOCOL_ERROR, "control frame over 125 bytes");
        rx->ctllen = 0;
        return 0;
    }
    if (op != MW_WS_CONT && op != MW_WS_TEXT && op != MW_WS_BINARY)
        FAIL(MW_WS_PROTOCOL_ERROR, "reserved opcode");
    if ((rsv & 0x30) || ((rsv & 0x40) && (!rx->allow_rsv1 || op == MW_WS_CONT)))
        FAIL(MW_WS_PROTOCOL_ERROR, "reserved bits set");
    if (op == MW_WS_CONT) {
        if (!rx->msg_op)
            FAIL(MW_WS_PROTOCOL_ERROR, "continuation frame without a message");
        rx->first = false;
    } else {
        if (rx->msg_op)
            FAIL(MW_WS_PROTOCOL_ERROR, "new message inside a fragmented one");
        rx->msg_op = (uint8_t)op;
        rx->msg_compressed = rsv & 0x40;
        rx->msg_len = 0;
        rx->utf8 = 0;
        rx->first = true;
    }
    if (rx->msg_len + len > max)
        FAIL(MW_WS_TOO_BIG, "message too big");
    rx->msg_len += len;
    return 0;
}

/* n bytes of a data frame's payload (the whole rest of the frame when rx->left is
 * now 0). */
static int data_piece(struct mw_wsrx *rx, unsigned char *p, size_t n,
                      const struct mw_wsrx_events *ev, void *ud, const char **why)
{
    bool last = rx->left == 0 && rx->fin;
    bool text = rx->msg_op == MW_WS_TEXT && !rx->msg_compressed;
    if (text && !mw_utf8_feed(&rx->utf8, p, n))
        FAIL(MW_WS_INVALID_DATA, "invalid UTF-8");
    if (text && last && rx->utf8)
        FAIL(MW_WS_INVALID_DATA, "invalid UTF-8");
    int op = rx->msg_op;
    bool first = rx->first;
    rx->first = false;
    if (last)
        rx->msg_op = 0;
    int rc = ev->data(ud, op, rx->msg_compressed, p, n, first, last);
    if (rc)
        FAIL(rc, "refused by the receiver");
    return 0;
}

/* A complete control frame's payload. */
static int control(struct mw_wsrx *rx, unsigned char *p, size_t n, const struct mw_wsrx_events *ev,
                   void *ud, const char **why)
{
    int code = 0;
    if (rx->op == MW_WS_CLOSE) {
        if (n == 1)
            FAIL(MW_WS_PROTOCOL_ERROR, "close payload of 1 byte");
        code = 1005; /* none given */
        if (n >= 2) {
            code = p[0] << 8 | p[1];
            if (!mw_ws_close_code_valid(code))
                FAIL(MW_WS_PROTOCOL_ERROR, "invalid close code");
            if (!mw_utf8_valid(p + 2, n - 2))
                FAIL(MW_WS_INVALID_DATA, "invalid UTF-8 in the close reason");
            p += 2;
            n -= 2;
        }
    }
    if (rx->op == MW_WS_CLOSE)
        rx->closed = true;
    int rc = ev->control(ud, rx->op, code, p, n);
    if (rc)
        FAIL(rc, "refused by the receiver");
    return 0;
}

int mw_wsrx_feed(struct mw_wsrx *rx, unsigned char *buf, size_t len, uint64_t max,
                 const struct mw_wsrx_events *ev, void *ud, const char **why)
{
    size_t i = 0;
    int rc;
    if (rx->closed)
        return 0; /* nothing counts after the peer's close frame */
    while (i < len) {
        if (rx->hlen < 2 || rx->hlen < header_size(rx)) {
            rx->hdr[rx->hlen++] = buf[i++];
            if (rx->hlen < 2 || rx->hlen < header_size(rx))
                continue;
            if ((rc = start_frame(rx, max, why)))
                return rc;
            if (rx->left) /* its payload comes next */
                continue;
        } else {
            size_t k = rx->left < len - i ? (size_t)rx->left : len - i;
            unsigned char *p = buf + i;
            unmask(rx, p, k);
            rx->left -= k;
            i += k;
            if (!(rx->op & 0x8)) {
                if ((rc = data_piece(rx, p, k, ev, ud, why)))
                    return rc;
                if (!rx->left)
                    rx->hlen = 0;
                continue;
            }
            if (rx->left || rx->ctllen) { /* a control frame in pieces: collect it */
                if (!rx->ctl)
                    rx->ctl = mw_malloc(CTL_MAX);
                memcpy(rx->ctl + rx->ctllen, p, k);
                rx->ctllen = (uint8_t)(rx->ctllen + k);
                if (rx->left)
                    continue;
                p = rx->ctl;
                k = rx->ctllen;
            }
            rx->hlen = 0;
            rc = control(rx, p, k, ev, ud, why);
            free(rx->ctl);
            rx->ctl = NULL;
            rx->ctllen = 0;
            if (rc || rx->closed)
                return rc;
            continue;
        }
        /* A frame without payload ends with its header. */
        rx->hlen = 0;
        if ((rc = (rx->op & 0x8) ? control(rx, buf + i, 0, ev, ud, why)
                                 : data_piece(rx, buf + i, 0, ev, ud, why)))
            return rc;
        if (rx->closed)
            return 0;
    }
    return 0;
}

void mw_wsrx_free(struct mw_wsrx *rx)
{
    free(rx->ctl);
    rx->ctl = NULL;
}
