/* jsonpeek.h - a cheap look into a message envelope without decoding it: the one
 * field the core needs before (or instead of) handing a message to Lua.
 *
 * Leaf module: no allocation, one pass, bounded by the input. */
#ifndef MW_JSONPEEK_H
#define MW_JSONPEEK_H

#include <stddef.h>

/* When p[0..len) is a JSON object whose top-level "id" is a string or an integer
 * (SPEC: the id a reply carries), returns the length of that value's JSON text and
 * points *id at it (inside p: a well-formed JSON string token with its quotes, or
 * -?digits). Returns 0 when there is no such id, or the text is not an object of
 * well-formed JSON up to the id. */
size_t mw_json_peek_id(const char *p, size_t len, const char **id);

#endif
