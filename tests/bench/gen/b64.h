/* b64.h - base64, to build and check a WebSocket handshake (with core/base/sha1.h's
 * SHA-1, the one the server uses). Leaf module. */
#ifndef MWB_B64_H
#define MWB_B64_H

#include <stddef.h>

/* Writes the base64 of in (NUL-terminated) to out, which holds 4*ceil(len/3)+1 bytes.
 * Returns the length written. */
size_t mwb_base64(const unsigned char *in, size_t len, char *out);

#endif
