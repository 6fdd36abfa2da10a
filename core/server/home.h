/* home.h - where the Lua library, bundled apps and web files are: MOONWIRE_HOME if
 * set; else, for a binary still in its build directory, the source tree it was built
 * from (so an out-of-tree build runs as is); else the installed share/moonwire next to
 * the binary (BINDIR/../share/moonwire, so an installed prefix can be moved), then the
 * one of the configured prefix; else the source tree. */
#ifndef MW_HOME_H
#define MW_HOME_H

/* Returns the home directory (static storage). */
const char *mw_home(void);

#endif
