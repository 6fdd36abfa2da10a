/* rxpage.h - libwebsockets' per-connection rx buffers from our own page slots, so
 * that an idle connection gives back the page its last control frame touched. */
#ifndef MW_RXPAGE_H
#define MW_RXPAGE_H

#include <stddef.h>

/* How much lws reads from a connection per readiness: one read of at most
 * min(rx_buffer_size, pt_serv_buf_size). At 4 KiB a publisher got ~17 messages in per
 * loop iteration, and an iteration with 1000 recipients takes milliseconds. It is also
 * the size of the per-connection buffer lws reassembles payload in (allocated at the
 * upgrade; only touched pages are resident: +0.25 KiB per idle connection measured). */
#define MW_RX_BUFFER (64 * 1024)

/* Installs the allocator (before the libwebsockets context is created). */
void mw_rxpage_install(void);
/* After a pong's payload `in` was handled: gives its pages back to the kernel. */
void mw_rxpage_release(void *in, size_t len);
/* At exit, once libwebsockets freed every buffer: unmaps the slots (kept while any
 * buffer is still out). */
void mw_rxpage_free_all(void);

#endif
