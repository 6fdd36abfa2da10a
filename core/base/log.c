/* log.c - logfmt (default) or JSON lines on stderr. */
#include "base/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

#include "base/buf.h"
#include "base/jsonw.h"
#include "base/util.h"

int mw_log_level = MW_LOG_INFO;

static void keep_recent(const char *line, size_t len);
static int log_json;

static const char *level_names[] = { "debug", "info", "warn", "error" };

void mw_log_set(int level, int json_format)
{
    mw_log_level = level;
    log_json = json_format;
}

int mw_log_level_parse(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (strcasecmp(name, level_names[i]) == 0)
            return i;
    if (strcasecmp(name, "warning") == 0)
        return MW_LOG_WARN;
    return -1;
}

/* Turns `k=v k2="quoted \"v\""` into `,"k":"v","k2":"quoted \"v\""`. */
static void logfmt_to_json(struct mw_buf *b, const char *s)
{
    while (*s) {
        while (*s == ' ')
            s++;
        const char *k = s;
        while (*s && *s != '=' && *s != ' ')
            s++;
        if (s == k)
            break;
        size_t klen = (size_t)(s - k);
        struct mw_buf v = { 0 };
        if (*s == '=') {
            s++;
            if (*s == '"') {
                s++;
                while (*s && *s != '"') {
                    if (*s == '\\' && s[1]) {
                        s++;
                        mw_buf_putc(&v, *s == 'n' ? '\n' : *s);
                    } else {
                        mw_buf_putc(&v, *s);
                    }
                    s++;
                }
                if (*s == '"')
                    s++;
            } else {
                while (*s && *s != ' ')
                    mw_buf_putc(&v, *s++);
            }
        }
        mw_buf_putc(b, ',');
        mw_jsonw_strn(b, k, klen);
        mw_buf_putc(b, ':');
        mw_jsonw_strn(b, v.p ? v.p : "", v.len);
        mw_buf_free(&v);
    }
}

void mw__log(int level, const char *msg, const char *fmt, ...)
{
    char fields[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(fields, sizeof fields, fmt, ap);
    va_end(ap);

    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char ts[40];
    size_t n = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof ts - n, ".%03dZ", (int)(tv.tv_usec / 1000));

    struct mw_buf b = { 0 };
    if (log_json) {
        mw_buf_printf(&b, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":", ts, level_names[level]);
        mw_jsonw_str(&b, msg);
        logfmt_to_json(&b, fields);
        mw_buf_puts(&b, "}\n");
    } else {
        mw_buf_printf(&b, "ts=%s level=%s msg=", ts, level_names[level]);
        mw_jsonw_str(&b, msg);
        if (fields[0]) {
            mw_buf_putc(&b, ' ');
            mw_buf_puts(&b, fields);
        }
        mw_buf_putc(&b, '\n');
    }
    fwrite(b.p, 1, b.len, stderr);
    if (level >= MW_LOG_WARN || strncmp(msg, "reload", 6) == 0)
        keep_recent(b.p, b.len - 1);
    mw_buf_free(&b);
}

/* The last MW_LOG_RECENT warnings, errors and reload lines, for the admin page. */
static char *recent[MW_LOG_RECENT];
static unsigned recent_next, recent_len;

static void keep_recent(const char *line, size_t len)
{
    free(recent[recent_next]);
    recent[recent_next] = mw_strndup(line, len);
    recent_next = (recent_next + 1) % MW_LOG_RECENT;
    if (recent_len < MW_LOG_RECENT)
        recent_len++;
}

void mw_log_recent(void (*fn)(void *ud, const char *line), void *ud)
{
    unsigned first = (recent_next + MW_LOG_RECENT - recent_len) % MW_LOG_RECENT;
    for (unsigned i = 0; i < recent_len; i++)
        fn(ud, recent[(first + i) % MW_LOG_RECENT]);
}

void mw_log_recent_free(void)
{
    for (unsigned i = 0; i < MW_LOG_RECENT; i++) {
        free(recent[i]);
        recent[i] = NULL;
    }
    recent_next = recent_len = 0;
}
