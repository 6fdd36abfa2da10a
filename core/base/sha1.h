/* sha1.h - SHA-1 (FIPS 180-4) of a short message, for the WebSocket handshake's
 * Sec-WebSocket-Accept (RFC 6455 4.2.2), where it is not used for security. Leaf
 * module. */
#ifndef MW_SHA1_H
#define MW_SHA1_H

#include <stddef.h>
#include <stdint.h>

/* Writes the 20-byte digest of data[0..len) to out. */
void mw_sha1(const void *data, size_t len, unsigned char out[20]);

#endif
