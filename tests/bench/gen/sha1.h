/* sha1.h - SHA-1 and base64: just enough to build and check a WebSocket handshake.
 * Leaf module. */
#ifndef MWB_SHA1_H
#define MWB_SHA1_H

#include <stddef.h>

/* Writes the 20-byte SHA-1 digest of data to out. */
void mwb_sha1(const void *data, size_t len, unsigned char out[20]);
/* Writes the base64 of in (NUL-terminated) to out, which holds 4*ceil(len/3)+1 bytes.
 * Returns the length written. */
size_t mwb_base64(const unsigned char *in, size_t len, char *out);

#endif
