/* deflate.h - permessage-deflate (RFC 7692): the negotiation, frames compressed once
 * for every recipient, and compressed messages inflated.
 *
 * moonwire always answers with server_no_context_takeover and
 * client_no_context_takeover: every message is compressed on its own, so that one
 * compressed frame serves every connection that agreed the same window (a broadcast is
 * compressed once, not once per recipient: uWebSockets' shared compressor), and so that
 * no connection keeps an inflater (~40 KiB) between messages.
 *
 * Leaf module (zlib, msg.h). */
#ifndef MW_DEFLATE_H
#define MW_DEFLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/msg.h"

/* Picks the first acceptable permessage-deflate offer in the Sec-WebSocket-Extensions
 * values vals[0..n) (each a comma-separated list; a header may come on several
 * lines). Returns the window our frames may use (server_max_window_bits, 8..15) and
 * writes the response's header value into resp; 0 when no offer is acceptable (then
 * the connection is not compressed). */
int mw_pmd_negotiate(const char *const *vals, const size_t *lens, size_t n, char *resp,
                     size_t resplen);

/* The frame to send for m on a connection whose frames may use window `wbits`: a new
 * reference to a compressed copy (RSV1 set), made once and kept with m for the usual
 * window 15, or to m itself when it is not a text or binary frame, its payload is
 * under 32 bytes, or compression does not make it smaller. */
struct mw_msg *mw_deflate_frame(struct mw_msg *m, int wbits);

/* A compressed message being inflated, piece by piece as it arrives. */
struct mw_inflate;
/* Inflates in[0..n), a piece of a compressed message (`last`: the message ends with
 * it), appending to *out (a buffer of *cap bytes holding *len, grown as needed),
 * never past max bytes. *st is made on the first piece and freed after the last.
 * Returns 0, 1009 when the message inflates past max, or 1007 when it is not valid
 * deflate data (then *st is freed). */
int mw_inflate_piece(struct mw_inflate **st, const unsigned char *in, size_t n, bool last,
                     char **out, size_t *len, size_t *cap, size_t max);
/* Frees an inflation left half-way (the connection went away). */
void mw_inflate_free(struct mw_inflate **st);

/* Counters for metrics. */
struct mw_deflate_stats {
    uint64_t deflated, deflated_in, deflated_out; /* frames compressed, bytes before, after */
    uint64_t not_smaller;                         /* frames sent as they were */
    uint64_t inflated, inflated_in, inflated_out; /* messages inflated, bytes before, after */
};
extern struct mw_deflate_stats mw_deflate_stats;

/* Frees the compressors (exit). */
void mw_deflate_shutdown(void);

#endif
