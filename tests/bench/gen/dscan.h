/* dscan.h - finds data.t and data.seq of a chat:message event without walking its JSON.
 *
 * At millions of deliveries per second the generator has ~15 ns per event. A server
 * writes every event of a run with one layout (its own key order, compact JSON); the
 * layout moves only when a number gains a digit or a name is longer. So the generic
 * walk (jscan) handles an event once and teaches dscan where the `"type"` key, data's
 * `"t"` key and data's `"seq"` key sit, counted from both ends of the payload; later
 * events are checked at those places (the first 8 bytes, then each key's bytes) and
 * their two numbers read in place. Anything that does not match exactly goes back to
 * the generic walk, which learns the new layout. Leaf module. */
#ifndef MWB_DSCAN_H
#define MWB_DSCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Where one key's opening quote sits: offset from the start and back from the end. */
struct ds_place {
    uint32_t from_start, from_end;
};

struct dscan {
    bool learned;
    uint64_t head;          /* the payload's first 8 bytes */
    struct ds_place type, t, seq;
    uint64_t hits, learns;  /* events read in place; layouts learned */
};

/* Reads t and seq of the chat:message event p[0..n) at the learned places. Returns
 * true when every check passed, false when the generic walk must handle it. */
bool ds_match(const struct dscan *d, const char *p, size_t n, int64_t *t, int64_t *seq);

/* Learns the layout of the chat:message event p[0..n), given the opening quotes of its
 * "type" key and of data's "t" and "seq" keys (pointers into p). Learns nothing when
 * the event is not compact JSON at those places. */
void ds_learn(struct dscan *d, const char *p, size_t n, const char *type_key,
              const char *t_key, const char *seq_key);

#endif
