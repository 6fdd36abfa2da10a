/* jsonw.h - writing JSON from C (events the core generates: hello, presence, typing,
 * errors). Leaf module. */
#ifndef MW_JSONW_H
#define MW_JSONW_H

#include <stddef.h>

#include "base/buf.h"

/* Appends s[0..n) as a quoted, escaped JSON string. */
void mw_jsonw_strn(struct mw_buf *b, const char *s, size_t n);
static inline void mw_jsonw_str(struct mw_buf *b, const char *s) { mw_jsonw_strn(b, s, strlen(s)); }
/* Appends the start of a core event, `{"type":T,"room":R,"data":`; the caller
 * appends the data and the closing brace. */
void mw_jsonw_event(struct mw_buf *b, const char *type, const char *room);

#endif
