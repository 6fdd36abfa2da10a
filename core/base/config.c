/* config.c - loads the YAML configuration (docs/config.md) into struct mw_config.
 *
 * The file is loaded whole with libyaml's document API, then walked with small field
 * tables (one per YAML map) and one converter per value kind. The first problem stops
 * the walk and is reported as one line, "source:line: path: message", with the 1-based
 * line of the offending node. Leaf module: libyaml, util, buf and log.h only. */
#include "base/config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <yaml.h>

#include "base/buf.h"
#include "base/log.h"
#include "base/util.h"

/* The embedded default, served by a bare `moonwire`. Paths are relative to HOME/examples. */
const char mw_config_embedded_yaml[] =
    "# moonwire embedded default: bundled apps, demo page, hot reload.\n"
    "listen: 127.0.0.1:8080\n"
    "static: web\n"
    "api: { keys: [dev] }   # the development API key, printed at start\n"
    "routes:\n"
    "  /chat:\n"
    "    script: \"app:chat\"\n"
    "    options: { mentions: true }\n"
    "  /echo:\n"
    "    script: \"app:echo\"\n"
    "    protocol: raw\n"
    "  /notify:\n"
    "    script: \"app:notify\"\n"
    "  /reservations:\n"
    "    script: \"app:reservations\"\n"
    "dev: { hot_reload: true, user_param: true }\n";

#define MAX_OPTIONS_JSON (1024 * 1024) /* guards against alias bombs in `options:` */
#define MAX_JSON_DEPTH 64              /* and against recursive aliases */

struct ctx {
    yaml_document_t doc;
    const char *source;
    const char *home;
    struct mw_config *cfg;
    char **vals;       /* vals[i]: text of scalar node i after ${VAR}, made on first use */
    size_t nvals;
    char path[512];    /* key path of the node being parsed: "routes./chat.history" */
    size_t pathlen;
    const yaml_node_t *workers; /* the `workers:` value, for the check after the walk */
    const yaml_node_t *options; /* the `options:` map being converted, and the length */
    size_t options_pathlen;     /* of its key path, for the size error */
    struct mw_buf *lines;       /* its YAML lines, as json_value writes them */
    char *err;
    size_t errlen;
};

static void free_strv(char **v, size_t n);

/* ---- errors and key paths ---- */

static int line_of(const yaml_node_t *n)
{
    return (int)n->start_mark.line + 1;
}

/* Writes "source:line: message" to the caller's buffer, flattened to one line.
 * Returns -1 so that callers can `return fail(...)`. */
static int fail_line(struct ctx *c, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail_line(struct ctx *c, int line, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    for (char *p = msg; *p; p++)
        if ((unsigned char)*p < ' ')
            *p = ' ';
    if (c->err && c->errlen)
        snprintf(c->err, c->errlen, "%s:%d: %s", c->source, line, msg);
    return -1;
}

#define fail(c, node, ...) fail_line((c), line_of(node), __VA_ARGS__)

/* Appends `key` to the current key path; returns the mark that path_pop restores. */
static size_t path_push(struct ctx *c, const char *key)
{
    size_t mark = c->pathlen;
    int n = snprintf(c->path + mark, sizeof c->path - mark, "%s%s", mark ? "." : "", key);
    c->pathlen = n < 0 ? mark : mark + (size_t)n;
    if (c->pathlen >= sizeof c->path)
        c->pathlen = sizeof c->path - 1;
    return mark;
}

static void path_pop(struct ctx *c, size_t mark)
{
    c->pathlen = mark;
    c->path[mark] = '\0';
}

static const char *kind_name(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_MAPPING_NODE: return "a map";
    case YAML_SEQUENCE_NODE: return "a list";
    default: return "a single value";
    }
}

/* ---- scalars and ${VAR} substitution ---- */

static const char *raw_text(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

/* A plain empty, "~" or "null" scalar: a key written without a value. */
static bool is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *s = raw_text(n);
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
           !strcmp(s, "NULL");
}

/* Appends the value of the reference between "${" and "}" ([s, end)): NAME, or
 * NAME:-DEFAULT (used when NAME is unset or empty). An unset NAME appends nothing.
 * Returns -1 when NAME is not a valid variable name. */
static int put_var(struct mw_buf *b, const char *s, const char *end)
{
    const char *p = s;
    if (p == end || !(isalpha((unsigned char)*p) || *p == '_'))
        return -1;
    while (p < end && (isalnum((unsigned char)*p) || *p == '_'))
        p++;
    if (p < end && (end - p < 2 || p[0] != ':' || p[1] != '-'))
        return -1;
    char name[128];
    if ((size_t)(p - s) >= sizeof name)
        return -1;
    memcpy(name, s, (size_t)(p - s));
    name[p - s] = '\0';
    const char *v = getenv(name);
    if (v && *v)
        mw_buf_puts(b, v);
    else if (p < end)
        mw_buf_append(b, p + 2, (size_t)(end - p - 2));
    return 0;
}

/* Sets *out to a malloc'd copy of scalar n with every ${VAR} replaced. */
static int expand_env(struct ctx *c, const yaml_node_t *n, char **out)
{
    const char *s = raw_text(n), *d;
    struct mw_buf b = { 0 };
    mw_buf_reserve(&b, strlen(s) + 1); /* also keeps b.p non-NULL for empty appends */
    while ((d = strstr(s, "${"))) {
        mw_buf_append(&b, s, (size_t)(d - s));
        const char *end = strchr(d + 2, '}');
        if (!end) {
            mw_buf_free(&b);
            return fail(c, n, "%s: unterminated '${' in '%s'", c->path, raw_text(n));
        }
        if (put_var(&b, d + 2, end) < 0) {
            mw_buf_free(&b);
            return fail(c, n, "%s: invalid variable reference '%.*s' (use ${NAME})", c->path,
                        (int)(end - d + 1), d);
        }
        s = end + 1;
    }
    mw_buf_puts(&b, s);
    mw_buf_putc(&b, '\0');
    *out = b.p;
    return 0;
}

/* Sets *out to the text of scalar n after substitution (owned by the context);
 * a map or a list where a single value belongs is an error. */
static int scalar_of(struct ctx *c, const yaml_node_t *n, const char **out)
{
    if (n->type != YAML_SCALAR_NODE)
        return fail(c, n, "%s: expected a single value, found %s", c->path, kind_name(n));
    size_t i = (size_t)(n - c->doc.nodes.start);
    mw_assert(i < c->nvals);
    if (!c->vals[i] && expand_env(c, n, &c->vals[i]) < 0)
        return -1;
    *out = c->vals[i];
    return 0;
}

/* ---- value syntax: booleans, integers, numbers, durations, sizes ---- */

static int parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = { "true", "yes", "on" };
    static const char *const no[] = { "false", "no", "off" };
    for (int i = 0; i < 3; i++) {
        if (!strcasecmp(s, yes[i]) || !strcasecmp(s, no[i])) {
            *out = !strcasecmp(s, yes[i]);
            return 0;
        }
    }
    return -1;
}

/* Decimal digits only (no sign, no trailing text), at most `max`. */
static int parse_uint(const char *s, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (!*s)
        return -1;
    for (; *s; s++) {
        if (!isdigit((unsigned char)*s))
            return -1;
        unsigned d = (unsigned)(*s - '0');
        if (v > (max - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* A finite decimal number ("50", "0.5", "1e3"); no hex, inf or nan. */
static int parse_number(const char *s, double *out)
{
    if (!*s || strspn(s, "0123456789.eE+-") != strlen(s))
        return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*end || errno || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

struct unit {
    const char *name;
    uint64_t factor;
};

/* Parses "DIGITS[.DIGITS]UNIT": the number times the factor that `units` gives its
 * suffix (case-sensitive unless `icase`). The result must be a whole number of the
 * base unit and at most `max`: "1.5s" is 1500 ms, "0.5ms" is refused. */
static int parse_scaled(const char *s, const struct unit *units, bool icase, uint64_t max,
                        uint64_t *out)
{
    size_t ni = strspn(s, "0123456789"), nf = 0;
    if (ni == 0 || ni > 19)
        return -1;
    if (s[ni] == '.') {
        nf = strspn(s + ni + 1, "0123456789");
        if (nf == 0 || nf > 18)
            return -1;
    }
    const char *suffix = s + ni + (nf ? nf + 1 : 0);
    const struct unit *u = units;
    while (u->name && (icase ? strcasecmp(u->name, suffix) : strcmp(u->name, suffix)))
        u++;
    if (!u->name)
        return -1;
    unsigned __int128 ip = 0, fp = 0, scale = 1;
    for (size_t i = 0; i < ni; i++)
        ip = ip * 10 + (unsigned)(s[i] - '0');
    for (size_t i = 0; i < nf; i++, scale *= 10)
        fp = fp * 10 + (unsigned)(s[ni + 1 + i] - '0');
    unsigned __int128 v = ip * u->factor + fp * u->factor / scale;
    if (fp * u->factor % scale || v > max)
        return -1;
    *out = (uint64_t)v;
    return 0;
}

static const struct unit duration_units[] = {
    { "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 }, { "", 1000 }, { NULL, 0 },
};

static const struct unit size_units[] = {
    { "", 1 },           { "B", 1 },
    { "KB", 1000 },      { "MB", 1000000 },      { "GB", 1000000000 },
    { "KiB", 1 << 10 },  { "MiB", 1 << 20 },     { "GiB", 1 << 30 },
    { NULL, 0 },
};

int mw_parse_duration(const char *s, uint64_t *ms)
{
    return s ? parse_scaled(s, duration_units, false, UINT64_MAX, ms) : -1;
}

int mw_parse_size(const char *s, size_t *bytes)
{
    uint64_t v;
    if (!s || parse_scaled(s, size_units, true, SIZE_MAX, &v) < 0)
        return -1;
    *bytes = (size_t)v;
    return 0;
}

/* ---- paths ---- */

/* Returns a malloc'd absolute path for `p` (relative to `base` unless absolute),
 * canonicalised by realpath when it exists. */
static char *resolve_path(const char *base, const char *p)
{
    struct mw_buf b = { 0 };
    if (p[0] != '/')
        mw_buf_printf(&b, "%s/", base);
    mw_buf_puts(&b, p);
    mw_buf_putc(&b, '\0');
    char *real = realpath(b.p, NULL);
    if (!real)
        return b.p;
    mw_buf_free(&b);
    return real;
}

static bool is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* ---- field tables ---- */

enum kind {
    K_BOOL,  /* bool */
    K_MS,    /* uint64_t, a duration in milliseconds */
    K_SIZE,  /* size_t, bytes */
    K_U32,   /* uint32_t */
    K_INT,   /* int */
    K_NUM,   /* double, > 0 and >= min */
    K_STR,   /* char *, NULL when empty */
    K_ENUM,  /* int-sized enum: index in `names` */
    K_MAP,   /* nested map whose fields live in the same object */
    K_FUNC,  /* anything else: fn(ctx, node, object) */
};

struct field {
    const char *key;
    enum kind kind;
    size_t off;                     /* offset of the member in the object */
    uint64_t min, max;              /* numeric kinds; max 0 = unbounded */
    const char *const *names;       /* K_ENUM */
    const struct field *sub;        /* K_MAP */
    int (*fn)(struct ctx *c, yaml_node_t *n, void *obj); /* K_FUNC */
};

_Static_assert(sizeof(enum mw_route_protocol) == sizeof(int), "K_ENUM stores an int");
_Static_assert(sizeof(enum mw_slow_policy) == sizeof(int), "K_ENUM stores an int");
_Static_assert(sizeof(enum mw_log_format) == sizeof(int), "K_ENUM stores an int");

/* Edit distance of two short keys, for "did you mean" hints. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), row[33];
    if (la > 32 || lb > 32)
        return 99;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            diag = up;
            row[j] = best;
        }
    }
    return row[lb];
}

static int unknown_key(struct ctx *c, const yaml_node_t *k, const char *key,
                       const struct field *fields)
{
    const char *hint = NULL;
    size_t best = strlen(key) <= 4 ? 1 : 2; /* "foo" is not a typo of "log" */
    for (const struct field *f = fields; f->key; f++) {
        size_t d = edit_distance(key, f->key);
        if (d <= best) {
            hint = f->key;
            best = d;
        }
    }
    char suffix[80] = "";
    if (hint)
        snprintf(suffix, sizeof suffix, " (did you mean '%s'?)", hint);
    if (!c->pathlen)
        return fail(c, k, "unknown key '%s'%s", key, suffix);
    return fail(c, k, "unknown key '%s' in %s%s", key, c->path, suffix);
}

/* Sets *key to the text of pair p's key in map m; a key that is not a plain value or
 * that repeats an earlier one is an error (libyaml itself accepts both). */
static int map_key(struct ctx *c, const yaml_node_t *m, const yaml_node_pair_t *p,
                   const char **key)
{
    yaml_node_t *k = yaml_document_get_node(&c->doc, p->key);
    if (k->type != YAML_SCALAR_NODE)
        return fail(c, k, "%s%skeys must be single values, found %s", c->path,
                    c->pathlen ? ": " : "", kind_name(k));
    for (const yaml_node_pair_t *q = m->data.mapping.pairs.start; q < p; q++) {
        yaml_node_t *prev = yaml_document_get_node(&c->doc, q->key);
        if (prev->type == YAML_SCALAR_NODE && !strcmp(raw_text(prev), raw_text(k))) {
            if (!c->pathlen)
                return fail(c, k, "duplicate key '%s' (first at line %d)", raw_text(k),
                            line_of(prev));
            return fail(c, k, "duplicate key '%s' in %s (first at line %d)", raw_text(k),
                        c->path, line_of(prev));
        }
    }
    *key = raw_text(k);
    return 0;
}

static int expect_map(struct ctx *c, const yaml_node_t *n)
{
    if (n->type == YAML_MAPPING_NODE)
        return 0;
    if (n->type == YAML_SCALAR_NODE)
        return fail(c, n, "%s: expected a map, found '%s'", c->path, raw_text(n));
    return fail(c, n, "%s: expected a map, found %s", c->path, kind_name(n));
}

static int check_range(struct ctx *c, const yaml_node_t *n, const struct field *f, uint64_t v,
                       const char *text)
{
    if (f->max && (v < f->min || v > f->max))
        return fail(c, n, "%s: must be between %llu and %llu, got '%s'", c->path,
                    (unsigned long long)f->min, (unsigned long long)f->max, text);
    if (v < f->min && f->min == 1)
        return fail(c, n, "%s: must be greater than 0, got '%s'", c->path, text);
    if (v < f->min)
        return fail(c, n, "%s: must be at least %llu, got '%s'", c->path,
                    (unsigned long long)f->min, text);
    return 0;
}

static int set_enum(struct ctx *c, const yaml_node_t *n, const struct field *f, const char *s,
                    int *dst)
{
    char choices[128] = "";
    for (int i = 0; f->names[i]; i++) {
        if (!strcmp(s, f->names[i])) {
            *dst = i;
            return 0;
        }
        size_t len = strlen(choices);
        snprintf(choices + len, sizeof choices - len, "%s%s", i ? ", " : "", f->names[i]);
    }
    return fail(c, n, "%s: unknown value '%s' (one of: %s)", c->path, s, choices);
}

static int set_number(struct ctx *c, const yaml_node_t *n, const struct field *f,
                      const char *s, double *dst)
{
    double v;
    if (parse_number(s, &v) < 0)
        return fail(c, n, "%s: expected a number, got '%s'", c->path, s);
    if (v <= 0 || v < (double)f->min) {
        if (f->min)
            return fail(c, n, "%s: must be at least %llu, got '%s'", c->path,
                        (unsigned long long)f->min, s);
        return fail(c, n, "%s: must be greater than 0, got '%s'", c->path, s);
    }
    *dst = v;
    return 0;
}

/* Durations, sizes and counts: parsed as uint64_t, range-checked, then stored at the
 * field's own width. */
static int set_unsigned(struct ctx *c, const yaml_node_t *n, const struct field *f,
                        const char *s, void *dst)
{
    uint64_t v = 0;
    if (f->kind == K_MS && mw_parse_duration(s, &v) < 0)
        return fail(c, n, "%s: invalid duration '%s' (use e.g. 25s, 500ms)", c->path, s);
    if (f->kind == K_SIZE && parse_scaled(s, size_units, true, SIZE_MAX, &v) < 0)
        return fail(c, n, "%s: invalid size '%s' (use e.g. 64KiB, 1MiB, 512B)", c->path, s);
    if ((f->kind == K_U32 || f->kind == K_INT) &&
        parse_uint(s, f->kind == K_INT ? INT32_MAX : UINT32_MAX, &v) < 0)
        return fail(c, n, "%s: expected a whole number, got '%s'", c->path, s);
    if (check_range(c, n, f, v, s) < 0)
        return -1;
    switch (f->kind) {
    case K_MS: *(uint64_t *)dst = v; break;
    case K_SIZE: *(size_t *)dst = (size_t)v; break;
    case K_U32: *(uint32_t *)dst = (uint32_t)v; break;
    default: *(int *)dst = (int)v; break;
    }
    return 0;
}

/* Converts one scalar field of a kind that needs no custom code. */
static int set_scalar(struct ctx *c, yaml_node_t *n, const struct field *f, void *dst)
{
    const char *s;
    if (scalar_of(c, n, &s) < 0)
        return -1;
    switch (f->kind) {
    case K_BOOL:
        if (parse_bool(s, dst) < 0)
            return fail(c, n, "%s: expected true or false, got '%s'", c->path, s);
        return 0;
    case K_MS:
    case K_SIZE:
    case K_U32:
    case K_INT:
        return set_unsigned(c, n, f, s, dst);
    case K_NUM:
        return set_number(c, n, f, s, dst);
    case K_STR:
        free(*(char **)dst);
        *(char **)dst = *s ? mw_strdup(s) : NULL;
        return 0;
    case K_ENUM:
        return set_enum(c, n, f, s, dst);
    default:
        mw_assert(!"not a scalar kind");
        return -1;
    }
}

static int parse_map(struct ctx *c, yaml_node_t *m, const struct field *fields, void *obj);

static int parse_field(struct ctx *c, yaml_node_t *n, const struct field *f, void *obj)
{
    switch (f->kind) {
    case K_MAP:
        return parse_map(c, n, f->sub, obj);
    case K_FUNC:
        return f->fn(c, n, obj);
    default:
        return set_scalar(c, n, f, (char *)obj + f->off);
    }
}

/* Walks map m, storing each key through its entry in `fields` into obj. A key written
 * without a value (null: empty, ~ or null) keeps its default, so does a null map; field
 * parsers therefore never see a null node. */
static int parse_map(struct ctx *c, yaml_node_t *m, const struct field *fields, void *obj)
{
    if (is_null(m))
        return 0;
    if (expect_map(c, m) < 0)
        return -1;
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        const char *key;
        if (map_key(c, m, p, &key) < 0)
            return -1;
        const struct field *f = fields;
        while (f->key && strcmp(f->key, key))
            f++;
        if (!f->key)
            return unknown_key(c, yaml_document_get_node(&c->doc, p->key), key, fields);
        yaml_node_t *v = yaml_document_get_node(&c->doc, p->value);
        if (is_null(v))
            continue;
        size_t mark = path_push(c, key);
        int rc = parse_field(c, v, f, obj);
        path_pop(c, mark);
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* ---- top-level values ---- */

/* "HOST:PORT", "[IPV6]:PORT" or ":PORT" (all interfaces). */
int mw_parse_listen(const char *s, char **host_out, int *port_out)
{
    const char *host, *colon;
    uint64_t port;
    if (s[0] == '[') {
        host = s + 1;
        colon = strchr(s, ']');
        colon = colon && colon > host ? colon + 1 : NULL;
    } else {
        host = s;
        colon = strchr(s, ':');
        colon = colon && !strchr(colon + 1, ':') ? colon : NULL;
    }
    if (!colon || *colon != ':' || strcspn(s, " \t/") != strlen(s))
        return -1;
    if (parse_uint(colon + 1, 65535, &port) < 0)
        return -2;
    size_t hostlen = (size_t)(colon - host) - (s[0] == '[');
    free(*host_out);
    *host_out = hostlen ? mw_strndup(host, hostlen) : mw_strdup("0.0.0.0");
    *port_out = (int)port;
    return 0;
}

static int parse_listen(struct ctx *c, yaml_node_t *n, void *obj)
{
    struct mw_config *cfg = obj;
    const char *s;
    if (scalar_of(c, n, &s) < 0)
        return -1;
    int rc = mw_parse_listen(s, &cfg->listen_host, &cfg->listen_port);
    if (rc == -1)
        return fail(c, n, "%s: expected HOST:PORT, [IPV6]:PORT or :PORT, got '%s'", c->path, s);
    if (rc < 0)
        return fail(c, n, "%s: invalid port in '%s' (0..65535)", c->path, s);
    return 0;
}

static int parse_node_id(struct ctx *c, yaml_node_t *n, void *obj)
{
    struct mw_config *cfg = obj;
    const char *s;
    if (scalar_of(c, n, &s) < 0)
        return -1;
    size_t len = strlen(s);
    if (len > 64 || strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                              "0123456789_.-") != len)
        return fail(c, n, "%s: '%s' must be 1 to 64 characters of A-Z a-z 0-9 _ . -",
                    c->path, s);
    free(cfg->node_id);
    cfg->node_id = len ? mw_strdup(s) : NULL;
    return 0;
}

static int parse_static(struct ctx *c, yaml_node_t *n, void *obj)
{
    struct mw_config *cfg = obj;
    const char *s;
    if (scalar_of(c, n, &s) < 0)
        return -1;
    free(cfg->static_dir);
    cfg->static_dir = NULL;
    if (!*s)
        return 0;
    cfg->static_dir = resolve_path(cfg->base_dir, s);
    if (!is_dir(cfg->static_dir))
        return fail(c, n, "%s: directory not found: %s", c->path, cfg->static_dir);
    return 0;
}

static int parse_log_level(struct ctx *c, yaml_node_t *n, void *obj)
{
    struct mw_config *cfg = obj;
    const char *s;
    if (scalar_of(c, n, &s) < 0)
        return -1;
    int level = mw_log_level_parse(s);
    if (level < 0)
        return fail(c, n, "%s: unknown value '%s' (one of: debug, info, warn, error)",
                    c->path, s);
    cfg->log_level = level;
    return 0;
}

/* Fills a malloc'd, NULL-terminated array from list n; empty items are dropped
 * when `drop_empty`, else refused; `check` (if any) validates each item. */
static int parse_list(struct ctx *c, yaml_node_t *n, char ***items, size_t *count,
                      bool drop_empty, int (*check)(struct ctx *, yaml_node_t *, const char *))
{
    if (n->type != YAML_SEQUENCE_NODE)
        return fail(c, n, "%s: expected a list, found %s", c->path, kind_name(n));
    yaml_node_item_t *it = n->data.sequence.items.start, *top = n->data.sequence.items.top;
    *items = mw_calloc((size_t)(top - it) + 1, sizeof **items);
    for (; it < top; it++) {
        yaml_node_t *item = yaml_document_get_node(&c->doc, *it);
        const char *s;
        if (scalar_of(c, item, &s) < 0 || (check && check(c, item, s) < 0))
            return -1;
        if (!*s && drop_empty)
            continue;
        (*items)[(*count)++] = mw_strdup(s);
    }
    return 0;
}

static int parse_api_keys(struct ctx *c, yaml_node_t *n, void *obj)
{
    struct mw_config *cfg = obj;
    return parse_list(c, n, &cfg->api_keys, &cfg->napi_keys, true, NULL);
}

static int check_redis_url(struct ctx *c, yaml_node_t *n, const char *s)
{
    size_t scheme = !strncmp(s, "redis://", 8) ? 8 : !strncmp(s, "rediss://", 9) ? 9 : 0;
    if (!scheme || !s[scheme])
        return fail(c, n, "%s: invalid Redis URL '%s' (use redis://HOST:PORT or rediss://...)",
                    c->path, s);
    return 0;
}

static int parse_redis_url(struct ctx *c, yaml_node_t *n, void *obj)
{
    struct mw_config *cfg = obj;
    const char *s;
    if (scalar_of(c, n, &s) < 0 || check_redis_url(c, n, s) < 0)
        return -1;
    free(cfg->redis_url);
    cfg->redis_url = mw_strdup(s);
    return 0;
}

static int parse_redis_cluster(struct ctx *c, yaml_node_t *n, void *obj)
{
    struct mw_config *cfg = obj;
    if (parse_list(c, n, &cfg->redis_cluster, &cfg->nredis_cluster, false, check_redis_url) < 0)
        return -1;
    if (!cfg->nredis_cluster)
        return fail(c, n, "%s: needs at least one seed URL", c->path);
    return 0;
}

#define CFG(m) offsetof(struct mw_config, m)

static const struct field redis_fields[] = {
    { "url", K_FUNC, .fn = parse_redis_url },
    { "cluster", K_FUNC, .fn = parse_redis_cluster },
    { "timeout", K_MS, .off = CFG(redis_timeout_ms), .min = 50, .max = 60000 },
    { "max_in_flight", K_U32, .off = CFG(redis_max_in_flight), .min = 1 },
    { NULL },
};

/* `redis:` absent or null = the embedded single node; else exactly one of url, cluster. */
static int parse_redis(struct ctx *c, yaml_node_t *n, void *obj)
{
    struct mw_config *cfg = obj;
    if (parse_map(c, n, redis_fields, cfg) < 0)
        return -1;
    if (cfg->redis_url && cfg->nredis_cluster)
        return fail(c, n, "%s: set 'url' or 'cluster', not both", c->path);
    if (!cfg->redis_url && !cfg->nredis_cluster)
        return fail(c, n, "%s: set 'url' (one node) or 'cluster' (seed URLs)", c->path);
    return 0;
}

static const struct field workers_field = { "workers", K_INT, .off = CFG(workers), .min = 1, .max = 256 };

/* Kept for the check in parse_document: it depends on `redis`, which may come later. */
static int parse_workers(struct ctx *c, yaml_node_t *n, void *obj)
{
    c->workers = n;
    return set_scalar(c, n, &workers_field, (char *)obj + workers_field.off);
}

/* `auth.jwt_public_key`: PEM text as is (from ${ENV}), else a file path. */
static int parse_public_key(struct ctx *c, yaml_node_t *n, void *obj)
{
    struct mw_config *cfg = obj;
    const char *s;
    if (scalar_of(c, n, &s) < 0)
        return -1;
    free(cfg->jwt_public_key);
    cfg->jwt_public_key = NULL;
    if (!*s)
        return 0; /* an unset ${VAR}: no key */
    cfg->jwt_public_key_line = line_of(n);
    if (!strncmp(s, "-----BEGIN", 10)) {
        cfg->jwt_public_key = mw_strdup(s);
        return 0;
    }
    cfg->jwt_public_key = resolve_path(cfg->base_dir, s);
    if (!is_file(cfg->jwt_public_key))
        return fail(c, n, "%s: file not found: %s", c->path, cfg->jwt_public_key);
    return 0;
}

static int check_algorithm(struct ctx *c, yaml_node_t *n, const char *s)
{
    static const char *const known[] = { "HS256", "HS384", "HS512", "RS256", "RS384", "RS512",
                                         "ES256", "ES384", "ES512", NULL };
    for (int i = 0; known[i]; i++)
        if (!strcmp(s, known[i]))
            return 0;
    if (!strcasecmp(s, "none"))
        return fail(c, n, "%s: 'none' would accept unsigned tokens", c->path);
    return fail(c, n, "%s: unknown algorithm '%s' (HS256, HS384, HS512, RS256, RS384, RS512, "
                "ES256, ES384, ES512)", c->path, s);
}

static int parse_algorithms(struct ctx *c, yaml_node_t *n, void *obj)
{
    struct mw_config *cfg = obj;
    if (parse_list(c, n, &cfg->jwt_algorithms, &cfg->njwt_algorithms, false, check_algorithm) < 0)
        return -1;
    if (!cfg->njwt_algorithms)
        return fail(c, n, "%s: an empty list would refuse every token", c->path);
    for (size_t i = 0; i < cfg->njwt_algorithms; i++) {
        bool hs = cfg->jwt_algorithms[i][0] == 'H';
        if (hs ? !cfg->jwt_secret : !cfg->jwt_public_key)
            return fail(c, n, "%s: %s needs %s", c->path, cfg->jwt_algorithms[i],
                        hs ? "jwt_secret (set before algorithms)" : "jwt_public_key (set before algorithms)");
    }
    return 0;
}

static const struct field auth_fields[] = {
    { "jwt_secret", K_STR, .off = CFG(jwt_secret) },
    { "jwt_public_key", K_FUNC, .fn = parse_public_key },
    { "algorithms", K_FUNC, .fn = parse_algorithms },
    { "issuer", K_STR, .off = CFG(jwt_issuer) },
    { "audience", K_STR, .off = CFG(jwt_audience) },
    { "leeway", K_MS, .off = CFG(auth_leeway_ms), .max = 300000 },
    { "timeout", K_MS, .off = CFG(auth_timeout_ms), .min = 1 },
    { "required", K_BOOL, .off = CFG(auth_required) },
    { NULL },
};

/* Fail-closed: requiring tokens that nothing can verify would refuse every client,
 * and an issuer or audience check without keys would check nothing: errors. Keys
 * themselves are loaded and checked at start (auth.c), with this file's line. */
static int parse_auth(struct ctx *c, yaml_node_t *n, void *obj)
{
    struct mw_config *cfg = obj;
    if (parse_map(c, n, auth_fields, cfg) < 0)
        return -1;
    bool keys = cfg->jwt_secret || cfg->jwt_public_key;
    if (cfg->auth_required && !keys)
        return fail(c, n, "%s: required is true but neither jwt_secret nor jwt_public_key is set "
                    "(or they are empty)", c->path);
    if ((cfg->jwt_issuer || cfg->jwt_audience) && !keys)
        return fail(c, n, "%s: issuer and audience need jwt_secret or jwt_public_key", c->path);
    return 0;
}

/* An Origin as browsers send it: scheme://host[:port], or a '*.' before the domain
 * for its subdomains ("https://" "*.example.com"). */
static int check_origin(struct ctx *c, yaml_node_t *n, const char *s)
{
    const char *host = strstr(s, "://");
    if (!host || host == s || !host[3] || strchr(host + 3, '/') || strspn(s, " \t") ||
        strcspn(s, " \t") != strlen(s))
        return fail(c, n, "%s: '%s' is not an origin (scheme://host[:port], e.g. https://example.com)",
                    c->path, s);
    if (strchr(host + 3, '*') && (strncmp(host + 3, "*.", 2) || strchr(host + 5, '*')))
        return fail(c, n, "%s: '%s': a wildcard only as scheme://*.domain", c->path, s);
    return 0;
}

static int parse_origins(struct ctx *c, yaml_node_t *n, void *obj)
{
    struct mw_config *cfg = obj;
    if (parse_list(c, n, &cfg->origins, &cfg->norigins, false, check_origin) < 0)
        return -1;
    if (!cfg->norigins)
        return fail(c, n, "%s: an empty list would refuse every browser", c->path);
    return 0;
}

/* ---- routes ---- */

#define RT(m) offsetof(struct mw_route_config, m)

/* "app:NAME" -> HOME/apps/NAME/main.lua; NAME is [A-Za-z0-9_-]+ so it stays inside. */
static int resolve_app(struct ctx *c, yaml_node_t *n, const char *name,
                       struct mw_route_config *r)
{
    size_t len = strlen(name);
    if (!len || strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                             "0123456789_-") != len)
        return fail(c, n, "%s: invalid app name '%s'", c->path, name);
    if (!c->home)
        return fail(c, n, "%s: 'app:%s' needs the moonwire home (set MOONWIRE_HOME)",
                    c->path, name);
    char rel[300];
    snprintf(rel, sizeof rel, "apps/%s/main.lua", name);
    free(r->app);
    r->app = mw_strdup(name);
    r->script = resolve_path(c->home, rel);
    return 0;
}

static int parse_script(struct ctx *c, yaml_node_t *n, void *obj)
{
    struct mw_route_config *r = obj;
    const char *s;
    if (scalar_of(c, n, &s) < 0)
        return -1;
    if (!*s)
        return fail(c, n, "%s: empty script path", c->path);
    free(r->script);
    r->script = NULL;
    if (!strncmp(s, "app:", 4)) {
        if (resolve_app(c, n, s + 4, r) < 0)
            return -1;
    } else {
        r->script = resolve_path(c->cfg->base_dir, s);
    }
    if (!is_file(r->script))
        return fail(c, n, "%s: script not found: %s", c->path, r->script);
    return 0;
}

static int parse_history_size(struct ctx *c, yaml_node_t *n, void *obj)
{
    struct mw_route_config *r = obj;
    const char *s;
    uint64_t v;
    if (scalar_of(c, n, &s) < 0)
        return -1;
    if (parse_uint(s, UINT32_MAX, &v) < 0)
        return fail(c, n, "%s: expected a whole number, got '%s'", c->path, s);
    if (v == 0)
        return fail(c, n, "%s: history size must be at least 1; "
                    "use 'history: off' to turn history off", c->path);
    r->history_size = (uint32_t)v;
    return 0;
}

static const struct field history_fields[] = {
    { "size", K_FUNC, .fn = parse_history_size },
    { "ttl", K_MS, .off = RT(history_ttl_ms) },
    { NULL },
};

/* `history: {size, ttl}`, or a boolean: off/false disables, on/true keeps the default. */
static int parse_history(struct ctx *c, yaml_node_t *n, void *obj)
{
    struct mw_route_config *r = obj;
    const char *s;
    bool on;
    if (n->type != YAML_SCALAR_NODE)
        return parse_map(c, n, history_fields, r);
    if (scalar_of(c, n, &s) < 0)
        return -1;
    if (parse_bool(s, &on) < 0)
        return fail(c, n, "%s: expected a map like { size: 100 } or off, found '%s'",
                    c->path, s);
    r->history_size = on ? MW_DEFAULT_HISTORY_SIZE : 0;
    return 0;
}

static void json_string(struct mw_buf *b, const char *s)
{
    mw_buf_putc(b, '"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        const char *esc = ch == '"' ? "\\\"" : ch == '\\' ? "\\\\" : ch == '\n' ? "\\n"
                        : ch == '\r' ? "\\r" : ch == '\t' ? "\\t" : NULL;
        if (esc)
            mw_buf_puts(b, esc);
        else if (ch < 0x20)
            mw_buf_printf(b, "\\u%04x", ch);
        else
            mw_buf_putc(b, (char)ch);
    }
    mw_buf_putc(b, '"');
}

/* JSON's number grammar, so that the text can be copied as is. */
static bool is_json_number(const char *s)
{
    if (*s == '-')
        s++;
    if (*s == '0')
        s++;
    else if (*s >= '1' && *s <= '9')
        s += strspn(s, "0123456789");
    else
        return false;
    if (*s == '.') {
        size_t n = strspn(++s, "0123456789");
        if (!n)
            return false;
        s += n;
    }
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-')
            s++;
        size_t n = strspn(s, "0123456789");
        if (!n)
            return false;
        s += n;
    }
    return *s == '\0';
}

/* Plain scalars that read as null, booleans or numbers stay typed; anything quoted
 * or else is a string. Null is judged before substitution, so "${UNSET}" is "". */
static int json_scalar(struct ctx *c, yaml_node_t *n, struct mw_buf *b)
{
    const char *s;
    if (scalar_of(c, n, &s) < 0)
        return -1;
    bool plain = n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    if (plain && is_null(n))
        mw_buf_puts(b, "null");
    else if (plain && (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE")))
        mw_buf_puts(b, "true");
    else if (plain && (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE")))
        mw_buf_puts(b, "false");
    else if (plain && is_json_number(s))
        mw_buf_puts(b, s);
    else
        json_string(b, s);
    return 0;
}

/* json_value writes the value to b, and its place in the file to c->lines: a node is
 * [line], [line, {key: node...}] for a map or [line, [node...]] for a list, the line
 * being its key's in a map (where an error about it should point) and its own in a
 * list. Scripts find the line of any part of their options by walking it
 * (mw.config_error). */
static int json_value(struct ctx *c, yaml_node_t *n, struct mw_buf *b, int line, int depth);

static int json_map(struct ctx *c, yaml_node_t *n, struct mw_buf *b, int depth)
{
    mw_buf_putc(b, '{');
    mw_buf_putc(c->lines, '{');
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        const char *key;
        if (map_key(c, n, p, &key) < 0)
            return -1;
        if (p > n->data.mapping.pairs.start) {
            mw_buf_putc(b, ',');
            mw_buf_putc(c->lines, ',');
        }
        json_string(b, key);
        mw_buf_putc(b, ':');
        json_string(c->lines, key);
        mw_buf_putc(c->lines, ':');
        size_t mark = path_push(c, key);
        int line = line_of(yaml_document_get_node(&c->doc, p->key));
        int rc = json_value(c, yaml_document_get_node(&c->doc, p->value), b, line, depth + 1);
        path_pop(c, mark);
        if (rc < 0)
            return -1;
    }
    mw_buf_putc(b, '}');
    mw_buf_putc(c->lines, '}');
    return 0;
}

static int json_list(struct ctx *c, yaml_node_t *n, struct mw_buf *b, int depth)
{
    mw_buf_putc(b, '[');
    mw_buf_putc(c->lines, '[');
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        if (it > n->data.sequence.items.start) {
            mw_buf_putc(b, ',');
            mw_buf_putc(c->lines, ',');
        }
        yaml_node_t *item = yaml_document_get_node(&c->doc, *it);
        if (json_value(c, item, b, line_of(item), depth + 1) < 0)
            return -1;
    }
    mw_buf_putc(b, ']');
    mw_buf_putc(c->lines, ']');
    return 0;
}

static int json_value(struct ctx *c, yaml_node_t *n, struct mw_buf *b, int line, int depth)
{
    if (depth > MAX_JSON_DEPTH)
        return fail(c, n, "%s: nested too deeply (a recursive alias?)", c->path);
    if (b->len > MAX_OPTIONS_JSON)
        return fail(c, c->options, "%.*s: options too large (over %d bytes as JSON)",
                    (int)c->options_pathlen, c->path, MAX_OPTIONS_JSON);
    mw_buf_printf(c->lines, "[%d", line);
    int rc = 0;
    switch (n->type) {
    case YAML_MAPPING_NODE:
        mw_buf_putc(c->lines, ',');
        rc = json_map(c, n, b, depth);
        break;
    case YAML_SEQUENCE_NODE:
        mw_buf_putc(c->lines, ',');
        rc = json_list(c, n, b, depth);
        break;
    default:
        rc = json_scalar(c, n, b);
        break;
    }
    mw_buf_putc(c->lines, ']');
    return rc;
}

/* `options:` a free-form map handed to the script, stored as compact JSON text, with
 * the lines it came from (options_lines_json). */
static int parse_options(struct ctx *c, yaml_node_t *n, void *obj)
{
    struct mw_route_config *r = obj;
    struct mw_buf b = { 0 }, lines = { 0 };
    if (expect_map(c, n) < 0)
        return -1;
    c->options = n;
    c->options_pathlen = c->pathlen;
    c->lines = &lines;
    int rc = json_value(c, n, &b, line_of(n), 0);
    c->lines = NULL;
    if (rc < 0) {
        mw_buf_free(&b);
        mw_buf_free(&lines);
        return -1;
    }
    mw_buf_putc(&b, '\0');
    mw_buf_putc(&lines, '\0');
    free(r->options_json);
    free(r->options_lines_json);
    r->options_json = b.p;
    r->options_lines_json = lines.p;
    return 0;
}

static const char *const protocol_names[] = { "json", "raw", NULL };
static const char *const slow_names[] = { "close", "drop", NULL };

static const struct field presence_fields[] = {
    { "events", K_BOOL, .off = RT(presence_events) },
    { "threshold", K_U32, .off = RT(presence_threshold), .min = 1 },
    { NULL },
};

/* A room pattern: an exact name, or a prefix ending in '*' ("venue:*", "*"). */
static int check_room_pattern(struct ctx *c, yaml_node_t *n, const char *s)
{
    size_t len = strlen(s);
    const char *star = strchr(s, '*');
    if (!len || len > 129)
        return fail(c, n, "%s: a room pattern is 1..128 bytes, then an optional '*'", c->path);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return fail(c, n, "%s: '%s' has a control character", c->path, s);
    if (star && star != s + len - 1)
        return fail(c, n, "%s: '%s': '*' only at the end (a prefix)", c->path, s);
    return 0;
}

static int parse_rooms(struct ctx *c, yaml_node_t *n, void *obj)
{
    struct mw_route_config *r = obj;
    if (parse_list(c, n, &r->rooms, &r->nrooms, false, check_room_pattern) < 0)
        return -1;
    if (!r->nrooms)
        return fail(c, n, "%s: an empty list would refuse every join (leave it out for any room)",
                    c->path);
    return 0;
}

static const struct field route_fields[] = {
    { "rooms", K_FUNC, .fn = parse_rooms },
    { "script", K_FUNC, .fn = parse_script },
    { "protocol", K_ENUM, .off = RT(protocol), .names = protocol_names },
    { "slow_consumer", K_ENUM, .off = RT(slow_consumer), .names = slow_names },
    { "compression", K_BOOL, .off = RT(compression) },
    { "history", K_FUNC, .fn = parse_history },
    { "presence", K_MAP, .sub = presence_fields },
    { "hold_ttl", K_MS, .off = RT(hold_ttl_ms), .min = 1 },
    { "options", K_FUNC, .fn = parse_options },
    { NULL },
};

void mw_config_route_defaults(struct mw_route_config *r)
{
    r->protocol = MW_PROTO_JSON;
    r->slow_consumer = MW_SLOW_CLOSE;
    r->history_size = MW_DEFAULT_HISTORY_SIZE;
    r->history_ttl_ms = 0;
    r->presence_events = true;
    r->presence_threshold = 100;
    r->hold_ttl_ms = 2 * 60 * 1000;
    r->options_json = mw_strdup("{}");
}

static int check_route_path(struct ctx *c, const yaml_node_t *k, const char *path)
{
    if (path[0] != '/')
        return fail(c, k, "%s: route path '%s' must start with '/'", c->path, path);
    for (const char *p = path; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f || *p == '?' || *p == '#')
            return fail(c, k, "%s: route path '%s' must not contain spaces, '?' or '#'",
                        c->path, path);
    return 0;
}

/* Whether map m has `key` (written, whatever its value). */
static bool has_key(struct ctx *c, const yaml_node_t *m, const char *key)
{
    for (const yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        const yaml_node_t *k = yaml_document_get_node(&c->doc, p->key);
        if (k->type == YAML_SCALAR_NODE && !strcmp(raw_text(k), key))
            return true;
    }
    return false;
}

static int parse_route(struct ctx *c, yaml_node_t *k, yaml_node_t *v, struct mw_route_config *r)
{
    if (check_route_path(c, k, r->path) < 0)
        return -1;
    size_t mark = path_push(c, r->path);
    int rc = parse_map(c, v, route_fields, r);
    if (rc == 0 && !r->script)
        rc = fail(c, k, "%s: missing required key 'script'", c->path);
    /* The notify app's rooms are topic feeds and the reservations app's are booking
     * boards: who else is there is nobody's business, so their routes send no presence
     * events unless the file asks for them. */
    if (rc == 0 && r->app && (!strcmp(r->app, "notify") || !strcmp(r->app, "reservations")) &&
        !has_key(c, v, "presence"))
        r->presence_events = false;
    /* The reservations app's rooms are venue:ID boards: its route claims them (and no
     * other room) unless the file says otherwise, so that no other route's client
     * reaches a venue (authz.h). */
    if (rc == 0 && r->app && !strcmp(r->app, "reservations") && !has_key(c, v, "rooms")) {
        r->rooms = mw_calloc(2, sizeof *r->rooms);
        r->rooms[0] = mw_strdup("venue:*");
        r->nrooms = 1;
    }
    path_pop(c, mark);
    return rc;
}

/* `routes:` a map of path -> route settings, kept in file order. */
static int parse_routes(struct ctx *c, yaml_node_t *n, void *obj)
{
    struct mw_config *cfg = obj;
    if (expect_map(c, n) < 0)
        return -1;
    yaml_node_pair_t *p = n->data.mapping.pairs.start, *top = n->data.mapping.pairs.top;
    cfg->routes = mw_calloc((size_t)(top - p), sizeof *cfg->routes);
    for (; p < top; p++) {
        const char *path;
        if (map_key(c, n, p, &path) < 0)
            return -1;
        yaml_node_t *k = yaml_document_get_node(&c->doc, p->key);
        struct mw_route_config *r = &cfg->routes[cfg->nroutes++];
        mw_config_route_defaults(r);
        r->path = mw_strdup(path);
        r->line = line_of(k);
        r->source = cfg->source;
        if (parse_route(c, k, yaml_document_get_node(&c->doc, p->value), r) < 0)
            return -1;
    }
    return 0;
}

/* ---- the whole file ---- */

static const struct field heartbeat_fields[] = {
    { "interval", K_MS, .off = CFG(heartbeat_interval_ms), .min = 1 },
    { "timeout", K_MS, .off = CFG(heartbeat_timeout_ms), .min = 1 },
    { NULL },
};

static const struct field limits_fields[] = {
    { "max_message", K_SIZE, .off = CFG(max_message), .min = 1 },
    { "send_queue", K_SIZE, .off = CFG(send_queue), .min = 1 },
    { "rate", K_NUM, .off = CFG(rate) },
    { "burst", K_NUM, .off = CFG(burst), .min = 1 },
    { "max_connections", K_U32, .off = CFG(max_connections), .min = 1 },
    { "socket_send_buffer", K_SIZE, .off = CFG(socket_send_buffer), .min = 4096 },
    { "slow_handler", K_MS, .off = CFG(slow_handler_ms) },
    { "handler_timeout", K_MS, .off = CFG(handler_timeout_ms) },
    { "max_rooms", K_U32, .off = CFG(max_rooms), .min = 1 },
    { "max_connections_per_ip", K_U32, .off = CFG(max_conns_per_ip) },
    { "max_connections_per_user", K_U32, .off = CFG(max_conns_per_user) },
    { "history_memory", K_SIZE, .off = CFG(history_memory), .min = 1 },
    { "sessions_memory", K_SIZE, .off = CFG(sessions_memory), .min = 1 },
    { NULL },
};

static const struct field api_fields[] = {
    { "keys", K_FUNC, .fn = parse_api_keys },
    { NULL },
};

static const struct field inbox_fields[] = {
    { "size", K_U32, .off = CFG(inbox_size), .min = 1, .max = MW_CONFIG_MAX_INBOX },
    { "ttl", K_MS, .off = CFG(inbox_ttl_ms) },
    { "max_item", K_SIZE, .off = CFG(inbox_max_item), .min = 1, .max = 1 << 20 },
    { NULL },
};

static const struct field dev_fields[] = {
    { "hot_reload", K_BOOL, .off = CFG(hot_reload) },
    { "user_param", K_BOOL, .off = CFG(user_param) },
    { NULL },
};

static const char *const format_names[] = { "logfmt", "json", NULL };

static const struct field log_fields[] = {
    { "level", K_FUNC, .fn = parse_log_level },
    { "format", K_ENUM, .off = CFG(log_format), .names = format_names },
    { NULL },
};

static const struct field top_fields[] = {
    { "listen", K_FUNC, .fn = parse_listen },
    { "node_id", K_FUNC, .fn = parse_node_id },
    { "static", K_FUNC, .fn = parse_static },
    { "workers", K_FUNC, .fn = parse_workers },
    { "routes", K_FUNC, .fn = parse_routes },
    { "heartbeat", K_MAP, .sub = heartbeat_fields },
    { "limits", K_MAP, .sub = limits_fields },
    { "redis", K_FUNC, .fn = parse_redis },
    { "auth", K_FUNC, .fn = parse_auth },
    { "origins", K_FUNC, .fn = parse_origins },
    { "api", K_MAP, .sub = api_fields },
    { "inbox", K_MAP, .sub = inbox_fields },
    { "dev", K_MAP, .sub = dev_fields },
    { "log", K_MAP, .sub = log_fields },
    { NULL },
};

static void set_defaults(struct mw_config *cfg, const char *source, const char *base_dir)
{
    char *real = realpath(base_dir ? base_dir : ".", NULL);
    cfg->source = mw_strdup(source);
    cfg->base_dir = real ? real : mw_strdup(base_dir ? base_dir : ".");
    cfg->listen_host = mw_strdup("127.0.0.1");
    cfg->listen_port = 8080;
    cfg->workers = 1;
    cfg->heartbeat_interval_ms = 25000;
    cfg->heartbeat_timeout_ms = 10000;
    cfg->redis_max_in_flight = 10000;
    cfg->max_message = 64 * 1024;
    cfg->send_queue = 1024 * 1024;
    cfg->rate = 50;
    cfg->burst = 100;
    cfg->max_connections = 100000;
    cfg->slow_handler_ms = 100;
    cfg->handler_timeout_ms = 1000;
    cfg->auth_leeway_ms = 5000;
    cfg->max_rooms = 128;
    cfg->max_conns_per_ip = 10000;
    cfg->max_conns_per_user = 100;
    cfg->history_memory = 64u << 20;
    cfg->sessions_memory = 64u << 20;
    cfg->auth_timeout_ms = 10000;
    cfg->inbox_size = 100;
    cfg->inbox_ttl_ms = 168 * 3600 * 1000ull; /* a week */
    cfg->inbox_max_item = 4096;
    cfg->log_level = MW_LOG_INFO;
    cfg->log_format = MW_LOG_LOGFMT;
}

/* The line of a reader error, which libyaml reports as a byte offset only. */
static int offset_line(const char *yaml, size_t len, size_t offset)
{
    int line = 1;
    for (size_t i = 0; i < offset && i < len; i++)
        line += yaml[i] == '\n';
    return line;
}

static int syntax_error(struct ctx *c, const yaml_parser_t *p, const char *yaml, size_t len)
{
    if (p->error == YAML_MEMORY_ERROR)
        return fail_line(c, 1, "out of memory parsing YAML");
    if (p->error == YAML_READER_ERROR)
        return fail_line(c, offset_line(yaml, len, p->problem_offset), "invalid YAML: %s",
                         p->problem ? p->problem : "unreadable input");
    const char *problem = p->problem ? p->problem : "syntax error";
    if (p->problem_mark.index < len && yaml[p->problem_mark.index] == '\t')
        problem = "found a tab (YAML indents with spaces only)";
    int line = (int)p->problem_mark.line + 1, ctx_line = (int)p->context_mark.line + 1;
    if (!p->context)
        return fail_line(c, line, "invalid YAML: %s", problem);
    if (ctx_line == line)
        return fail_line(c, line, "invalid YAML: %s: %s", p->context, problem);
    return fail_line(c, line, "invalid YAML: %s (line %d): %s", p->context, ctx_line, problem);
}

/* Loads the single YAML document of `yaml` into c->doc. */
static int load_document(struct ctx *c, const char *yaml, size_t len)
{
    yaml_parser_t parser;
    yaml_document_t extra;
    int rc = 0;
    if (!yaml_parser_initialize(&parser))
        return fail_line(c, 1, "out of memory parsing YAML");
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
    if (!yaml_parser_load(&parser, &c->doc)) {
        rc = syntax_error(c, &parser, yaml, len); /* before delete, which zeroes parser */
        yaml_parser_delete(&parser);
        return rc;
    }
    if (!yaml_parser_load(&parser, &extra)) {
        rc = syntax_error(c, &parser, yaml, len);
    } else {
        yaml_node_t *root = yaml_document_get_root_node(&extra);
        if (root)
            rc = fail(c, root, "only one YAML document is allowed");
        yaml_document_delete(&extra);
    }
    yaml_parser_delete(&parser);
    if (rc < 0)
        yaml_document_delete(&c->doc);
    return rc;
}

static int parse_document(struct ctx *c)
{
    yaml_node_t *root = yaml_document_get_root_node(&c->doc);
    if (!root)
        return 0; /* an empty file: all defaults */
    if (root->type != YAML_MAPPING_NODE)
        return fail(c, root, "the top level must be a map of settings, found %s",
                    kind_name(root));
    c->nvals = (size_t)(c->doc.nodes.top - c->doc.nodes.start);
    c->vals = mw_calloc(c->nvals, sizeof *c->vals);
    if (parse_map(c, root, top_fields, c->cfg) < 0)
        return -1;
    /* Workers are separate processes: without Redis each would be its own island
     * (rooms, presence and send_user split by whichever worker a client landed on). */
    struct mw_config *cfg = c->cfg;
    if (cfg->workers > 1 && !cfg->redis_url && !cfg->nredis_cluster)
        return fail(c, c->workers, "workers: %d workers need `redis` (url or cluster) so that "
                    "they share rooms and presence; set redis or use workers: 1", cfg->workers);
    return 0;
}

int mw_config_parse(const char *yaml, size_t len, const char *source, const char *base_dir,
                    const char *home, struct mw_config *out, char *err, size_t errlen)
{
    struct ctx c = {
        .source = source ? source : "<config>",
        .home = home,
        .cfg = out,
        .err = err,
        .errlen = errlen,
    };
    memset(out, 0, sizeof *out);
    if (err && errlen)
        err[0] = '\0';
    set_defaults(out, c.source, base_dir);
    int rc = load_document(&c, yaml, len);
    if (rc == 0) {
        rc = parse_document(&c);
        yaml_document_delete(&c.doc);
    }
    for (size_t i = 0; i < c.nvals; i++)
        free(c.vals[i]);
    free(c.vals);
    if (rc < 0)
        mw_config_free(out);
    return rc;
}


int mw_config_load_file(const char *path, const char *home, struct mw_config *out,
                        char *err, size_t errlen)
{
    size_t len = 0;
    memset(out, 0, sizeof *out);
    char *text = mw_read_file(path, &len);
    if (!text) {
        if (err && errlen)
            snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    const char *slash = strrchr(path, '/');
    char *dir = !slash ? mw_strdup(".") : slash == path ? mw_strdup("/")
                                        : mw_strndup(path, (size_t)(slash - path));
    int rc = mw_config_parse(text, len, path, dir, home, out, err, errlen);
    free(dir);
    free(text);
    return rc;
}

int mw_config_load_embedded(const char *home, struct mw_config *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!home) {
        if (err && errlen)
            snprintf(err, errlen, "<embedded>: no moonwire home for the bundled apps "
                     "(set MOONWIRE_HOME)");
        return -1;
    }
    char *base = resolve_path(home, "examples");
    int rc = mw_config_parse(mw_config_embedded_yaml, strlen(mw_config_embedded_yaml),
                             "<embedded>", base, home, out, err, errlen);
    free(base);
    return rc;
}

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void mw_config_free(struct mw_config *cfg)
{
    for (size_t i = 0; i < cfg->nroutes; i++) {
        struct mw_route_config *r = &cfg->routes[i];
        free(r->path);
        free(r->script);
        free(r->app);
        free(r->options_json);
        free_strv(r->rooms, r->nrooms);
        free(r->options_lines_json);
    }
    free(cfg->routes);
    free(cfg->source);
    free(cfg->base_dir);
    free(cfg->listen_host);
    free(cfg->node_id);
    free(cfg->static_dir);
    free_strv(cfg->redis_cluster, cfg->nredis_cluster);
    free(cfg->redis_url);
    free(cfg->jwt_secret);
    free(cfg->jwt_public_key);
    free_strv(cfg->origins, cfg->norigins);
    free_strv(cfg->jwt_algorithms, cfg->njwt_algorithms);
    free(cfg->jwt_issuer);
    free(cfg->jwt_audience);
    free_strv(cfg->api_keys, cfg->napi_keys);
    memset(cfg, 0, sizeof *cfg);
}

const struct mw_route_config *mw_config_route(const struct mw_config *cfg, const char *path)
{
    for (size_t i = 0; i < cfg->nroutes; i++)
        if (!strcmp(cfg->routes[i].path, path))
            return &cfg->routes[i];
    return NULL;
}
