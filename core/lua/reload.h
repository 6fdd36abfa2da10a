/* reload.h - hot reload: in dev (`dev.hot_reload`) the server watches each route's
 * script and every Lua file it loaded, and reloads the route when one changes
 * (debounced); SIGHUP reloads every route in any mode. Connections, their attributes
 * and room memberships live in C and are untouched. */
#ifndef MW_RELOAD_H
#define MW_RELOAD_H

#include <stdbool.h>

/* Starts watching when hot_reload is on. */
void mw_reload_init(bool watch, const char *home);
void mw_reload_shutdown(void);
/* Reloads every route now (SIGHUP); `why` goes to the log. */
void mw_reload_all(const char *why);

#endif
