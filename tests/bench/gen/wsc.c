/* wsc.c - client-side WebSocket handshake and framing (see wsc.h). */
#include "wsc.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "b64.h"
#include "base/sha1.h"

static const char GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

static uint64_t rng_state;

/* xorshift64*: mask keys need to vary, not to be secret, in a load generator. */
static uint32_t rng32(void)
{
    if (!rng_state && getrandom(&rng_state, sizeof rng_state, 0) != sizeof rng_state)
        rng_state = 0x9e3779b97f4a7c15ull;
    rng_state |= 1;
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545f4914f6cdd1dull) >> 32);
}

static void expected_accept(const char *key, char accept[WSC_ACCEPT_LEN + 1])
{
    char buf[64];
    unsigned char dig[20];
    int n = snprintf(buf, sizeof buf, "%s%s", key, GUID);
    mw_sha1(buf, (size_t)n, dig);
    mwb_base64(dig, sizeof dig, accept);
}

int wsc_request(char *buf, size_t cap, const char *host, int port, const char *target,
                char accept[WSC_ACCEPT_LEN + 1], bool deflate)
{
    unsigned char raw[16];
    char key[32];
    for (int i = 0; i < 16; i += 4) {
        uint32_t r = rng32();
        memcpy(raw + i, &r, 4);
    }
    mwb_base64(raw, sizeof raw, key);
    expected_accept(key, accept);
    int n = snprintf(buf, cap,
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n%s\r\n",
                     target, host, port, key,
                     deflate ? "Sec-WebSocket-Extensions: permessage-deflate; "
                               "client_no_context_takeover; client_max_window_bits\r\n" : "");
    return n > 0 && (size_t)n < cap ? n : -1;
}

/* Finds header `name` in the response head; returns its value (trimmed) or NULL. */
static const char *header(const char *head, size_t n, const char *name, size_t *vlen)
{
    size_t nl = strlen(name);
    const char *p = memchr(head, '\n', n), *end = head + n;
    while (p && ++p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            break;
        if ((size_t)(eol - p) > nl && p[nl] == ':' && strncasecmp(p, name, nl) == 0) {
            const char *v = p + nl + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            const char *ve = eol;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' '))
                ve--;
            *vlen = (size_t)(ve - v);
            return v;
        }
        p = eol;
    }
    return NULL;
}

int wsc_response(const char *p, size_t n, const char *accept)
{
    const char *end = NULL;
    for (size_t i = 3; i < n; i++) {
        if (p[i] == '\n' && p[i - 1] == '\r' && p[i - 2] == '\n' && p[i - 3] == '\r') {
            end = p + i + 1;
            break;
        }
    }
    if (!end)
        return n > 8192 ? -1 : 0;
    size_t hlen = (size_t)(end - p), vlen;
    if (hlen < 12 || memcmp(p, "HTTP/1.1 101", 12) != 0)
        return -1;
    const char *v = header(p, hlen, "Sec-WebSocket-Accept", &vlen);
    if (!v || vlen != WSC_ACCEPT_LEN || memcmp(v, accept, WSC_ACCEPT_LEN) != 0)
        return -1;
    return (int)hlen;
}

size_t wsc_frame(unsigned char *out, int opcode, const void *payload, size_t n)
{
    size_t h = 2;
    uint32_t key = rng32();
    unsigned char mask[4];
    const unsigned char *src = payload;

    out[0] = (unsigned char)(0x80 | (opcode & 0x0f));
    if (n < 126) {
        out[1] = (unsigned char)(0x80 | n);
    } else if (n <= 0xffff) {
        out[1] = 0x80 | 126;
        out[2] = (unsigned char)(n >> 8);
        out[3] = (unsigned char)n;
        h = 4;
    } else {
        out[1] = 0x80 | 127;
        for (int i = 0; i < 8; i++)
            out[2 + i] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
        h = 10;
    }
    memcpy(mask, &key, 4);
    memcpy(out + h, mask, 4);
    h += 4;
    for (size_t i = 0; i < n; i++)
        out[h + i] = src[i] ^ mask[i & 3];
    return h + n;
}

int wsc_parse(const unsigned char *p, size_t n, struct wsc_frame *f)
{
    if (n < 2)
        return 0;
    if ((p[0] & 0x30) || (p[1] & 0x80)) /* RSV2/RSV3 (no such extension), or masked */
        return -1;
    f->fin = p[0] & 0x80;
    f->rsv1 = p[0] & 0x40;
    f->opcode = p[0] & 0x0f;
    if (f->rsv1 && (f->opcode & 0x8))
        return -1;
    size_t len = p[1] & 0x7f, h = 2;
    if (len == 126) {
        if (n < 4)
            return 0;
        len = (size_t)p[2] << 8 | p[3];
        h = 4;
    } else if (len == 127) {
        if (n < 10)
            return 0;
        uint64_t l = 0;
        for (int i = 0; i < 8; i++)
            l = l << 8 | p[2 + i];
        if (l > (1ull << 31))
            return -1;
        len = (size_t)l;
        h = 10;
    }
    if (f->opcode >= 0x8 && (len > 125 || !f->fin))
        return -1;
    f->hdr = h;
    f->len = len;
    return n >= h + len;
}
