/* wsframe.h - the receiving side of WebSocket framing (RFC 6455 section 5): a parser
 * fed with bytes as they arrive, in any split, that checks everything the protocol
 * requires of a client's frames and hands over message pieces and control frames.
 *
 * Leaf module (utf8.h only): no sockets, unit-tested alone. Payload is unmasked in
 * place: a piece points into the buffer that was fed. */
#ifndef MW_WSFRAME_H
#define MW_WSFRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/utf8.h"

enum {
    MW_WS_CONT = 0x0,
    MW_WS_TEXT = 0x1,
    MW_WS_BINARY = 0x2,
    MW_WS_CLOSE = 0x8,
    MW_WS_PING = 0x9,
    MW_WS_PONG = 0xA,
};

/* Close codes the parser fails a connection with. */
enum {
    MW_WS_PROTOCOL_ERROR = 1002,
    MW_WS_INVALID_DATA = 1007,
    MW_WS_TOO_BIG = 1009,
};

struct mw_wsrx_events {
    /* A piece of a data message (op MW_WS_TEXT or MW_WS_BINARY): n payload bytes
     * (n may be 0), whether it is the message's first and last piece, and whether
     * the message is compressed (RSV1 on its first frame: text is then not checked
     * for UTF-8 here). A message that came whole in one feed is one piece with first
     * and last set. Returns 0, or a close code to fail the connection with. */
    int (*data)(void *ud, int op, bool compressed, unsigned char *p, size_t n, bool first,
                bool last);
    /* A complete control frame: PING or PONG with its payload, or CLOSE with its code
     * (1005 when it had none) and reason (checked: a valid code, UTF-8). Returns 0,
     * or a close code to fail the connection with. */
    int (*control)(void *ud, int op, int code, unsigned char *p, size_t n);
};

struct mw_wsrx {
    uint64_t left;       /* payload bytes of the current frame still to come */
    uint64_t msg_len;    /* bytes of the open message so far */
    uint8_t hdr[14];     /* the current frame's header while it is incomplete */
    uint8_t hlen;        /* bytes in hdr; 0 between frames */
    uint8_t op;          /* the current frame's opcode */
    bool fin, first;     /* its FIN bit; whether it starts a message */
    uint8_t mask[4];
    uint8_t midx;
    uint8_t msg_op;      /* TEXT or BINARY while a message is open, else 0 */
    bool msg_compressed;
    bool allow_rsv1;     /* permessage-deflate was negotiated */
    bool closed;         /* the peer's close frame came: nothing after it is parsed */
    mw_utf8_state utf8;  /* of an open uncompressed text message */
    unsigned char *ctl;  /* a control frame's payload while incomplete (125 bytes) */
    uint8_t ctllen;
};

/* Feeds buf[0..len), unmasking payload in place, with messages bounded by
 * max_message bytes. Parsing stops at the peer's close frame: the rest of buf and
 * anything fed later is ignored. Returns 0, or the close code to fail the connection with and a
 * few words in *why: 1002 (a protocol error), 1007 (invalid UTF-8, a bad close
 * reason), 1009 (too big), or what an event returned. After a failure nothing more
 * may be fed. */
int mw_wsrx_feed(struct mw_wsrx *rx, unsigned char *buf, size_t len, uint64_t max_message,
                 const struct mw_wsrx_events *ev, void *ud, const char **why);
/* Frees what the parser holds. */
void mw_wsrx_free(struct mw_wsrx *rx);

/* Whether a close code may be sent by a peer (RFC 6455 7.4: 1000-1003, 1007-1011,
 * 3000-4999). */
bool mw_ws_close_code_valid(int code);

#endif
