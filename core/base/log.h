/* log.h - level-gated logging; a disabled level formats nothing.
 *
 * Lines are logfmt by default: ts=... level=info msg="listening" addr=127.0.0.1:8080
 * Callers pass the message and then key=value pairs preformatted:
 *   mw_log_info("conn open", "conn=%llu user=%s", id, user);                       */
#ifndef MW_LOG_H
#define MW_LOG_H

enum { MW_LOG_DEBUG = 0, MW_LOG_INFO = 1, MW_LOG_WARN = 2, MW_LOG_ERROR = 3 };

extern int mw_log_level;

void mw_log_set(int level, int json_format);
int mw_log_level_parse(const char *name); /* -1 when unknown */
void mw__log(int level, const char *msg, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The last lines at warn or error, and every reload line, are kept (as written) for
 * the admin page: fn gets each, oldest first. */
#define MW_LOG_RECENT 32
void mw_log_recent(void (*fn)(void *ud, const char *line), void *ud);
void mw_log_recent_free(void);

#define mw_log(lvl, msg, ...) \
    do { if ((lvl) >= mw_log_level) mw__log((lvl), (msg), __VA_ARGS__); } while (0)
#define mw_log_debug(msg, ...) mw_log(MW_LOG_DEBUG, msg, __VA_ARGS__)
#define mw_log_info(msg, ...) mw_log(MW_LOG_INFO, msg, __VA_ARGS__)
#define mw_log_warn(msg, ...) mw_log(MW_LOG_WARN, msg, __VA_ARGS__)
#define mw_log_error(msg, ...) mw_log(MW_LOG_ERROR, msg, __VA_ARGS__)

#endif
