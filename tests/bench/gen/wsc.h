/* wsc.h - the client side of RFC 6455: the upgrade request and its answer, masked
 * client frames, and parsing the server's unmasked frames. Leaf module. */
#ifndef MWB_WSC_H
#define MWB_WSC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { WS_CONT = 0x0, WS_TEXT = 0x1, WS_BINARY = 0x2, WS_CLOSE = 0x8, WS_PING = 0x9, WS_PONG = 0xa };

#define WSC_ACCEPT_LEN 28 /* base64 of a SHA-1 */

/* Writes a GET upgrade request for host:port + target (path and query) with a fresh
 * random key into buf (offering permessage-deflate without context takeover when
 * `deflate`); stores the Sec-WebSocket-Accept the server must answer.
 * Returns the request length, or -1 when buf is too small. */
int wsc_request(char *buf, size_t cap, const char *host, int port, const char *target,
                char accept[WSC_ACCEPT_LEN + 1], bool deflate);

/* Checks the server's answer in p[0..n). Returns the header length (frames may follow)
 * once it is complete and a valid 101 with the right accept, 0 when more bytes are
 * needed, -1 when it is refused or wrong. */
int wsc_response(const char *p, size_t n, const char *accept);

/* Bytes wsc_frame needs for a payload of n. */
static inline size_t wsc_frame_size(size_t n)
{
    return n + (n < 126 ? 6 : n <= 0xffff ? 8 : 14);
}
/* Writes one final, masked frame into out (wsc_frame_size(n) bytes). Returns its length. */
size_t wsc_frame(unsigned char *out, int opcode, const void *payload, size_t n);

struct wsc_frame {
    int opcode;
    bool fin, rsv1;   /* rsv1: compressed (permessage-deflate) */
    size_t hdr, len; /* header bytes, payload bytes */
};
/* Parses the frame header at p[0..n). Returns 1 when the whole frame is there, 0 when
 * more bytes are needed, -1 when it is invalid (masked, reserved bits other than RSV1
 * on a data frame, bad length). */
int wsc_parse(const unsigned char *p, size_t n, struct wsc_frame *f);

#endif
