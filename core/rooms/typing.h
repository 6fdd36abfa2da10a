/* typing.h - typing indicators: `typing` events to the other members, an automatic
 * typing:false after 5 s without a refresh, at most one typing:true broadcast per user
 * per room per 2 s (docs/protocol.md). */
#ifndef MW_TYPING_H
#define MW_TYPING_H

#include "rooms/room.h"

#define MW_TYPING_TIMEOUT_MS 5000
#define MW_TYPING_THROTTLE_MS 2000

/* The user of c starts (or refreshes) typing in room r. */
void mw_typing_start(struct mw_room *r, struct mw_conn *c);
/* Stops the user's typing in r if active (broadcasts typing:false). */
void mw_typing_stop_user(struct mw_room *r, const char *user);
/* Installs the room-free hook. */
void mw_typing_init(void);

#endif
