/* admin.h - this node's state for the admin page (/admin): connections, rooms,
 * presence, Redis, recent warnings, errors and reloads. */
#ifndef MW_ADMIN_H
#define MW_ADMIN_H

#include "base/buf.h"

/* Notes the start time (uptime). */
void mw_admin_init(void);
/* Appends {"type":"admin:snapshot","data":{...}} (docs/operations.md, "The admin
 * page") to b. */
void mw_admin_snapshot(struct mw_buf *b);

#endif
