/* rxpage.c - the per-connection rx buffers of libwebsockets, from page slots.
 *
 * Installed as libwebsockets' allocator: every allocation goes to the C library
 * except the WebSocket rx buffer, which comes from our own page-aligned slots. */
#include "rxpage.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <libwebsockets.h>

#include "util.h"

/* What lws allocates for that buffer (lib/roles/ws: rx_buffer_size + LWS_PRE + 4). */
#define RX_UBUF_SIZE (MW_RX_BUFFER + LWS_PRE + 4)
#define PAGE 4096

/* libwebsockets' allocations. One kind is special: the per-connection rx buffer
 * (rx_buffer_size + LWS_PRE + 4 bytes, allocated at the upgrade). Data frames are
 * parsed in place in the shared read buffer, but control frames are collected in it,
 * so the pong answering our heartbeat ping makes its first page resident: +4 KiB per
 * idle connection after the first heartbeat (measured: 2.7 -> 6.7 KiB per idle
 * connection). These buffers come from our own slots instead: page-aligned, whole
 * pages, in large anonymous mappings that are resident only where touched, so that
 * the pong callback can give its page back (mw_rxpage_release) and so that they cost
 * no allocator metadata (jemalloc keeps ~250 B per 80 KiB extent). */
#define RX_SLOT (((size_t)RX_UBUF_SIZE + PAGE - 1) & ~(size_t)(PAGE - 1))
#define RX_CHUNK_SLOTS 1024 /* 68 MiB of address space per mapping */

struct rx_chunk {
    struct rx_chunk *next;
    unsigned char *base;
};
static struct rx_chunk *rx_chunks;
static unsigned char **rx_free; /* free slots, a stack */
static size_t rx_nfree, rx_capfree;

static bool rx_owns(const void *p)
{
    if ((uintptr_t)p & (PAGE - 1)) /* every slot is page-aligned */
        return false;
    for (const struct rx_chunk *k = rx_chunks; k; k = k->next)
        if ((const unsigned char *)p >= k->base &&
            (const unsigned char *)p < k->base + RX_SLOT * RX_CHUNK_SLOTS)
            return true;
    return false;
}

static void *rx_get(void)
{
    if (!rx_nfree) {
        void *m = mmap(NULL, RX_SLOT * RX_CHUNK_SLOTS, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED)
            return NULL; /* lws fails that connection */
        struct rx_chunk *k = mw_malloc(sizeof *k);
        k->base = m;
        k->next = rx_chunks;
        rx_chunks = k;
        rx_capfree += RX_CHUNK_SLOTS;
        rx_free = mw_realloc(rx_free, rx_capfree * sizeof *rx_free);
        for (size_t i = RX_CHUNK_SLOTS; i-- > 0;) /* lowest address on top */
            rx_free[rx_nfree++] = k->base + i * RX_SLOT;
    }
    return rx_free[--rx_nfree];
}

static void rx_put(void *p)
{
    /* Whatever the connection touched (control frames, pieces of large messages)
     * goes back to the kernel; the next connection starts with zero pages. */
    madvise(p, RX_SLOT, MADV_DONTNEED);
    rx_free[rx_nfree++] = p;
}

/* At exit, once libwebsockets has freed every buffer; with any still out (lws would
 * free it later) the mappings stay. */
void mw_rxpage_free_all(void)
{
    if (rx_nfree != rx_capfree)
        return;
    while (rx_chunks) {
        struct rx_chunk *k = rx_chunks;
        rx_chunks = k->next;
        munmap(k->base, RX_SLOT * RX_CHUNK_SLOTS);
        free(k);
    }
    free(rx_free);
    rx_free = NULL;
    rx_nfree = rx_capfree = 0;
}

static void *lws_alloc(void *ptr, size_t size, const char *reason)
{
    (void)reason; /* compiled out of this libwebsockets build */
    if (ptr && rx_owns(ptr)) {
        void *q = NULL;
        if (size) { /* not done by lws 4.1; kept correct anyway */
            q = malloc(size);
            if (!q)
                return NULL;
            memcpy(q, ptr, size < RX_SLOT ? size : RX_SLOT);
        }
        rx_put(ptr);
        return q;
    }
    if (!size) {
        free(ptr);
        return NULL;
    }
    if (!ptr && size == RX_UBUF_SIZE)
        return rx_get();
    return realloc(ptr, size);
}

/* Called with the payload of a pong: libwebsockets 4.1 hands over rx_ubuf + LWS_PRE
 * (checked against the allocations above). The frame is complete and nothing else is
 * kept in that buffer between frames (no extensions), so its touched pages can go:
 * the kernel gives a zero page on the next touch. */
void mw_rxpage_release(void *in, size_t len)
{
#if LWS_LIBRARY_VERSION_MAJOR == 4 && LWS_LIBRARY_VERSION_MINOR == 1
    unsigned char *buf = (unsigned char *)in - LWS_PRE;
    if (((uintptr_t)buf & (PAGE - 1)) == 0 && LWS_PRE + len <= MW_RX_BUFFER)
        madvise(buf, (LWS_PRE + len + PAGE - 1) & ~(size_t)(PAGE - 1), MADV_DONTNEED);
#else
    (void)in;
    (void)len;
#endif
}

void mw_rxpage_install(void)
{
    lws_set_allocator(lws_alloc);
}
