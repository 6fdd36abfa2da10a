/* home.c - finding the Lua library and bundled apps. */
#include "home.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static int has_library(const char *dir)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/lua/moonwire/init.lua", dir);
    return access(path, R_OK) == 0;
}

const char *mw_home(void)
{
    static char home[PATH_MAX];
    if (home[0])
        return home;
    const char *env = getenv("MOONWIRE_HOME");
    const char *pick = env && *env ? env : has_library(MW_SHARE_DIR) ? MW_SHARE_DIR : MW_SOURCE_DIR;
    if (!realpath(pick, home))
        snprintf(home, sizeof home, "%s", pick);
    return home;
}
