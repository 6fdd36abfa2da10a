/* store.c - the store's front: picks the backend, validates requests the same way for
 * every backend, and the helpers that define what a stored number is. */
#include "store/store.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"

static enum { STORE_NEW, STORE_OPEN, STORE_CLOSED } state;
static const struct mw_store_backend *backend;
static bool use_redis;

const char *mw_store_strerror(int err)
{
    switch (err) {
    case 0: return "ok";
    case MW_STORE_EEXIST: return "exists";
    case MW_STORE_ENOTFOUND: return "not found";
    case MW_STORE_ENOTNUM: return "not a number";
    case MW_STORE_EWRONGTYPE: return "wrong type";
    case MW_STORE_ENOMEM: return "no memory";
    case MW_STORE_EUNAVAIL: return "unavailable";
    case MW_STORE_EINVAL: return "invalid argument";
    case MW_STORE_ERANGE: return "overflow";
    case MW_STORE_ECHANGED: return "changed";
    default: return "unknown error";
    }
}

void mw_store_use_redis(bool on)
{
    use_redis = on;
}

void mw_store_init(void)
{
    if (state == STORE_OPEN)
        return;
    if (use_redis) {
        backend = &mw_store_redis;
        mw__store_redis_open();
        state = STORE_OPEN;
        mw_log_info("store ready", "backend=%s prefix=%s", backend->name, MW_STORE_REDIS_PREFIX);
        return;
    }
    const char *deferred = getenv("MOONWIRE_STORE_DEFERRED");
    bool on = deferred && *deferred && strcmp(deferred, "0") != 0;
    backend = &mw_store_memory;
    mw__store_memory_open();
    mw_store_memory_set_deferred(on);
    state = STORE_OPEN;
    mw_log_info("store ready", "backend=%s deferred=%d", backend->name, on);
}

void mw_store_free(void)
{
    if (state != STORE_OPEN) {
        state = STORE_CLOSED;
        return;
    }
    state = STORE_CLOSED; /* first: callbacks run below may submit again */
    backend->free();
    backend = NULL;
}

static bool valid_key(const char *key, size_t len)
{
    return key && len >= 1 && len <= MW_STORE_MAX_KEY && !memchr(key, '\0', len);
}

static bool valid_field(const char *field, size_t len)
{
    return field && len >= 1 && len <= MW_STORE_MAX_FIELD && !memchr(field, '\0', len);
}

/* cas and hcas: a token when one is expected, a value or NULL (delete). */
static bool valid_cas(const struct mw_store_req *req)
{
    return (!req->has_token || req->token) && (!req->value || req->valuelen > 0);
}

static bool valid(const struct mw_store_req *req)
{
    if (!valid_key(req->key, req->keylen) || req->ttl_ms > MW_STORE_MAX_TTL_MS)
        return false;
    switch (req->op) {
    case MW_STORE_SET:
    case MW_STORE_ADD:
    case MW_STORE_REPLACE:
    case MW_STORE_LPUSH:
    case MW_STORE_RPUSH:
        return req->value && req->valuelen > 0;
    case MW_STORE_CAS:
        return valid_cas(req);
    case MW_STORE_HGET:
    case MW_STORE_HDEL:
        return valid_field(req->field, req->fieldlen);
    case MW_STORE_HSET:
        return valid_field(req->field, req->fieldlen) && req->value && req->valuelen > 0;
    case MW_STORE_HCAS:
        return valid_field(req->field, req->fieldlen) && valid_cas(req);
    case MW_STORE_SCHEDULE:
    case MW_STORE_UNSCHEDULE:
        return req->value && req->valuelen > 0 && req->valuelen <= MW_STORE_MAX_FIELD;
    case MW_STORE_DUE:
        return req->count >= 1 && req->count <= MW_STORE_MAX_DUE;
    case MW_STORE_HGETALL:
    case MW_STORE_INCR:
        return isfinite(req->n) && (!req->has_init || isfinite(req->init));
    case MW_STORE_GET:
    case MW_STORE_DELETE:
    case MW_STORE_EXPIRE:
    case MW_STORE_TTL:
    case MW_STORE_LPOP:
    case MW_STORE_RPOP:
    case MW_STORE_LLEN:
    case MW_STORE_LRANGE:
        return true;
    }
    return false;
}

static int fail_now(const struct mw_store_req *req, int err, mw_store_cb cb, void *ud)
{
    struct mw_store_result res = { .op = req->op, .err = err };
    cb(ud, &res);
    return 1;
}

int mw_store_submit(const struct mw_store_req *req, mw_store_cb cb, void *ud)
{
    if (state == STORE_NEW)
        mw_store_init();
    if (state != STORE_OPEN)
        return fail_now(req, MW_STORE_EUNAVAIL, cb, ud);
    if (!valid(req))
        return fail_now(req, MW_STORE_EINVAL, cb, ud);
    return backend->submit(req, cb, ud);
}

bool mw_store_may_defer(void)
{
    if (state == STORE_NEW)
        mw_store_init();
    return state == STORE_OPEN && backend->may_defer();
}

bool mw_store_on_redis(void)
{
    return use_redis;
}

void mw_store_stats(struct mw_store_stats *out)
{
    memset(out, 0, sizeof *out);
    if (state == STORE_OPEN)
        backend->stats(out);
}

/* JSON number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static bool json_number_syntax(const char *s, size_t len)
{
    const char *p = s, *end = s + len;
#define DIGIT(q) ((q) < end && *(q) >= '0' && *(q) <= '9')
    if (p < end && *p == '-')
        p++;
    if (p < end && *p == '0')
        p++;
    else if (DIGIT(p))
        while (DIGIT(p))
            p++;
    else
        return false;
    if (p < end && *p == '.') {
        p++;
        if (!DIGIT(p))
            return false;
        while (DIGIT(p))
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (!DIGIT(p))
            return false;
        while (DIGIT(p))
            p++;
    }
#undef DIGIT
    return p == end;
}

int mw__store_parse_number(const char *s, size_t len, double *out)
{
    char buf[64];
    if (len == 0 || len >= sizeof buf || !json_number_syntax(s, len))
        return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    double v = strtod(buf, NULL);
    if (!isfinite(v))
        return -1;
    *out = v;
    return 0;
}

int mw__store_format_number(double v, char buf[32])
{
    if (v == floor(v) && fabs(v) < 9007199254740992.0) /* 2^53: exact integers */
        return snprintf(buf, 32, "%lld", (long long)v); /* -0 prints as "0" */
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) { /* the shortest that reads back exactly */
        n = snprintf(buf, 32, "%.*g", prec, v);
        if (prec == 17 || strtod(buf, NULL) == v)
            break;
    }
    return n;
}
