/* redis_cmd.h - command routing: each command goes to the master of its key's slot
 * (one Redis: the one node). A MOVED moves the slot and resends, an ASK resends once
 * after ASKING, TRYAGAIN and CLUSTERDOWN resend RETRY_LATER_MS later, at most
 * MAX_REDIRECTS times in all; then the caller gets a NULL reply ("unavailable").
 *
 * Commands in flight are bounded per Redis server (redis.max_in_flight, the resends
 * waiting included): past the bound a command is refused at once rather than queued
 * behind a Redis that does not answer. A callback never fires inside the call that
 * sent its command: a command that cannot be sent returns -1 and is never called
 * back. The public calls are mw_redis_command and mw_redis_command_key (redis.h). */
#ifndef MW_REDIS_CMD_H
#define MW_REDIS_CMD_H

#include <stdint.h>

void mw__redis_cmd_start(uint32_t max_in_flight);
/* Pending resends get NULL replies. */
void mw__redis_cmd_stop(void);

#endif
