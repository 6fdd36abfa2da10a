/* reload.c - watching route scripts and reloading them. */
#include "lua/reload.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "base/buf.h"
#include "net/conn.h"
#include "base/jsonw.h"
#include "base/log.h"
#include "lua/script.h"
#include "base/context.h"
#include "base/util.h"

#define DEBOUNCE_MS 50
#define DEV_ATTR "__dev_reload" /* set by a `dev:watch` message (router.lua) */

struct watch {
    uv_fs_event_t handle; /* first: the close callback frees the struct */
    char *dir;
};

static struct watch **watches;
static size_t nwatches;
static bool *dirty;            /* per route, waiting for the debounce */
static uint64_t first_change_ms;
static uv_timer_t debounce;
static bool active;
static const char *home_dir;

static void on_watch_closed(uv_handle_t *h)
{
    struct watch *w = (struct watch *)h;
    free(w->dir);
    free(w);
}

static void unwatch_all(void)
{
    for (size_t i = 0; i < nwatches; i++)
        uv_close((uv_handle_t *)&watches[i]->handle, on_watch_closed);
    free(watches);
    watches = NULL;
    nwatches = 0;
}

/* Whether `dir/name` is one of the files route i's script loaded. */
static bool route_uses(size_t i, const char *dir, const char *name)
{
    const char *const *files;
    size_t n = mw_app_files(mw_srv.routes[i].app, &files), dlen = strlen(dir);
    for (size_t k = 0; k < n; k++)
        if (strncmp(files[k], dir, dlen) == 0 && files[k][dlen] == '/' &&
            strcmp(files[k] + dlen + 1, name) == 0)
            return true;
    return false;
}

static void on_debounce(uv_timer_t *t);

static void on_fs_event(uv_fs_event_t *h, const char *name, int events, int status)
{
    struct watch *w = (struct watch *)h;
    (void)events;
    if (status < 0 || !name)
        return;
    bool any = false;
    for (size_t i = 0; i < mw_srv.nroutes; i++) {
        if (route_uses(i, w->dir, name)) {
            dirty[i] = true;
            any = true;
        }
    }
    if (!any)
        return;
    if (!uv_is_active((uv_handle_t *)&debounce))
        first_change_ms = mw_now_ms();
    /* Editors write in several steps (truncate, write, rename): wait for quiet. */
    uv_timer_start(&debounce, on_debounce, DEBOUNCE_MS, 0);
}

static void watch_dir(const char *file)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", file);
    char *slash = strrchr(dir, '/');
    if (!slash)
        return;
    *slash = '\0';
    for (size_t i = 0; i < nwatches; i++)
        if (strcmp(watches[i]->dir, dir) == 0)
            return;
    struct watch *w = mw_calloc(1, sizeof *w);
    w->dir = mw_strdup(dir);
    uv_fs_event_init(uv_default_loop(), &w->handle);
    int rc = uv_fs_event_start(&w->handle, on_fs_event, dir, 0);
    if (rc < 0) {
        mw_log_warn("cannot watch", "dir=%s err=\"%s\"", dir, uv_strerror(rc));
        uv_close((uv_handle_t *)&w->handle, on_watch_closed);
        return;
    }
    watches = mw_realloc(watches, (nwatches + 1) * sizeof *watches);
    watches[nwatches++] = w;
}

/* Watches the directories of every file every route loaded (they change on reload). */
static void watch_all(void)
{
    unwatch_all();
    for (size_t i = 0; i < mw_srv.nroutes; i++) {
        const char *const *files;
        size_t n = mw_app_files(mw_srv.routes[i].app, &files);
        for (size_t k = 0; k < n; k++)
            watch_dir(files[k]);
    }
}

/* Tells the connections that sent `dev:watch` (a dev page reloading itself). */
static void notify_dev(const char *route, const char *error)
{
    if (!mw_srv.cfg->hot_reload) /* reload errors carry server paths: development only */
        return;
    struct mw_buf b = { 0 };
    mw_buf_puts(&b, "{\"type\":\"dev:reload\",\"data\":{\"route\":");
    mw_jsonw_str(&b, route);
    if (error) {
        mw_buf_puts(&b, ",\"ok\":false,\"error\":");
        mw_jsonw_str(&b, error);
    } else {
        mw_buf_puts(&b, ",\"ok\":true");
    }
    mw_buf_puts(&b, "}}");
    struct mw_msg *m = NULL;
    for (struct mw_conn *c = mw_conn_first(); c; c = c->all_next) {
        if (!mw_conn_attr_get(c, DEV_ATTR))
            continue;
        if (!m)
            m = mw_msg_new(MW_OP_TEXT, b.p, b.len, 0);
        mw_conn_send(c, m);
    }
    if (m)
        mw_msg_decref(m);
    mw_buf_free(&b);
}

static void reload_route(size_t i, const char *why, uint64_t since_ms)
{
    struct mw_route *r = &mw_srv.routes[i];
    char err[1024];
    if (mw_script_reload(r, home_dir, err, sizeof err) < 0) {
        r->stats.reload_failures++;
        mw_log_error("reload failed", "route=%s why=%s err=\"%s\" serving=previous",
                     r->cfg->path, why, err);
        notify_dev(r->cfg->path, err);
        return;
    }
    r->stats.reloads++;
    mw_log_info("reloaded", "route=%s why=%s ms=%" PRIu64, r->cfg->path, why,
                mw_now_ms() - since_ms);
    notify_dev(r->cfg->path, NULL);
}

static void on_debounce(uv_timer_t *t)
{
    (void)t;
    for (size_t i = 0; i < mw_srv.nroutes; i++) {
        if (dirty[i]) {
            dirty[i] = false;
            reload_route(i, "file-change", first_change_ms);
        }
    }
    watch_all();
}

void mw_reload_all(const char *why)
{
    uint64_t t0 = mw_now_ms();
    for (size_t i = 0; i < mw_srv.nroutes; i++)
        reload_route(i, why, t0);
    if (active)
        watch_all();
}

void mw_reload_init(bool watch, const char *home)
{
    home_dir = home;
    if (!watch || !mw_srv.nroutes)
        return;
    active = true;
    dirty = mw_calloc(mw_srv.nroutes, sizeof *dirty);
    uv_timer_init(uv_default_loop(), &debounce);
    watch_all();
    mw_log_info("hot reload on", "dirs=%zu", nwatches);
}

void mw_reload_shutdown(void)
{
    if (!active)
        return;
    unwatch_all();
    uv_close((uv_handle_t *)&debounce, NULL);
    free(dirty);
    dirty = NULL;
    active = false;
}
