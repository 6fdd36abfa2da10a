/* home.h - where the Lua library, bundled apps and web files are: MOONWIRE_HOME if
 * set, else the installed share/moonwire, else the source tree the binary was built
 * from (so an out-of-tree build runs as is). */
#ifndef MW_HOME_H
#define MW_HOME_H

/* Returns the home directory (static storage). */
const char *mw_home(void);

#endif
