/* home.c - finding the Lua library and bundled apps. */
#include "server/home.h"

#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int has_library(const char *dir)
{
    char path[PATH_MAX];
    int n = snprintf(path, sizeof path, "%s/lua/moonwire/init.lua", dir);
    return n > 0 && (size_t)n < sizeof path && access(path, R_OK) == 0;
}

/* The directory of the running binary (resolved), or "" when /proc is not there. */
static void exe_dir(char *out, size_t len)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    out[0] = '\0';
    if (n <= 0)
        return;
    exe[n] = '\0';
    snprintf(out, len, "%s", dirname(exe));
}

static int same_dir(const char *a, const char *b)
{
    char ra[PATH_MAX], rb[PATH_MAX];
    return realpath(a, ra) && realpath(b, rb) && strcmp(ra, rb) == 0;
}

/* Without MOONWIRE_HOME: a binary in its own build directory uses the source tree it
 * was built from (so a stale installed copy never shadows what you edit); an installed
 * binary uses BINDIR/../share/moonwire, wherever the prefix was moved; then the prefix
 * given at configure time; then the source tree. */
static const char *pick_home(char *buf, size_t len)
{
    char dir[PATH_MAX];
    exe_dir(dir, sizeof dir);
    if (dir[0] && same_dir(dir, MW_BUILD_DIR) && has_library(MW_SOURCE_DIR))
        return MW_SOURCE_DIR;
    if (dir[0]) {
        int n = snprintf(buf, len, "%s/../share/moonwire", dir);
        if (n > 0 && (size_t)n < len && has_library(buf))
            return buf;
    }
    return has_library(MW_SHARE_DIR) ? MW_SHARE_DIR : MW_SOURCE_DIR;
}

const char *mw_home(void)
{
    static char home[PATH_MAX];
    char buf[PATH_MAX];
    if (home[0])
        return home;
    const char *env = getenv("MOONWIRE_HOME");
    const char *pick = env && *env ? env : pick_home(buf, sizeof buf);
    if (!realpath(pick, home) && snprintf(home, sizeof home, "%s", pick) >= (int)sizeof home)
        home[sizeof home - 1] = '\0';
    return home;
}
