/* auth.h - who a connection is: the `sub` of a verified token (a JWT: HS256/384/512
 * with auth.jwt_secret, RS256/384/512 or ES256/384/512 with auth.jwt_public_key), or
 * for development the `user` query parameter, else an anonymous generated id.
 *
 * A token comes in the `Authorization: Bearer` header, the `token` query parameter or
 * a first `auth` message, and always wins over the `user` parameter. With
 * auth.required a connection without a valid token never gets served: a bad token at
 * the handshake is HTTP 401; without one, the connection waits (no hello, no connect
 * handler) for an `auth` message, and is closed 4001 on anything else or after
 * auth.timeout. A token's `exp` closes its connection 4001 unless an `auth` message
 * brought a newer token for the same user first.
 *
 * Works on server.h's mw_open_req, so it applies to every transport. */
#ifndef MW_AUTH_H
#define MW_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/config.h"
#include "base/ident.h"

struct mw_open_req;
struct mw_conn;

/* Loads and checks the keys (fail-closed: a key that cannot verify anything is an
 * error, "file:line: message" in err). 0 or -1. */
int mw_auth_init(const struct mw_config *cfg, char *err, size_t errlen);
void mw_auth_shutdown(void);

enum mw_identity_kind {
    MW_ID_ANON = 0,   /* a generated id */
    MW_ID_PARAM = 1,  /* the `user` query parameter (dev.user_param) */
    MW_ID_TOKEN = 2,  /* a verified token's sub */
    MW_ID_WAIT = 3,   /* auth.required without a token yet: waits for an `auth` message */
};

struct mw_identity {
    enum mw_identity_kind kind;
    char user[MW_USER_ID_MAX + 1]; /* "" unless PARAM or TOKEN */
    char *claims_json;             /* TOKEN: every claim, a JSON object (owned) */
    uint64_t exp_ms;               /* TOKEN: its exp (Unix ms), 0 when it has none */
};

void mw_identity_clear(struct mw_identity *id);

/* Who the request is: 0 with id set, or the HTTP status to refuse it with (400: a bad
 * `user` parameter; 401: a token that is not valid) and *why. The result is kept for
 * the same transport object: mw_auth_take hands it to the open that follows the
 * handshake's check instead of verifying the token twice. */
int mw_auth_identify(const struct mw_open_req *r, struct mw_identity *id, const char **why);
/* The identity mw_auth_identify found for tx; false when there is none kept. */
bool mw_auth_take(void *tx, struct mw_identity *id);

/* Verifies a token: 0 with id set (TOKEN), or -1 with *why. */
int mw_auth_verify(const char *token, size_t len, struct mw_identity *id, const char **why);

/* An `auth` message on c with this token: a waiting connection is identified (the
 * caller then opens it); one with a token gets the newer token of the same user
 * (refresh). 0, or -1 with *code ("unauthorized": not valid; "forbidden": another
 * user, or a connection that has no token to refresh) and *why. */
int mw_auth_message(struct mw_conn *c, const char *token, size_t len, const char **code,
                    const char **why);

/* The token of an `auth` message, {"type":"auth","data":{"token":T}}: 0 with *token a
 * malloc'd copy, or -1 with *why (not such a message). */
int mw_auth_parse_message(const char *p, size_t len, char **token, size_t *tlen, const char **why);
/* auth.timeout: how long a connection waits for its first `auth` message (ms). */
uint64_t mw_auth_wait_ms(void);

/* The sweep (heartbeat.c's visit of every open connection): closes with 4001 a
 * connection whose token expired or whose first `auth` message did not come in time. */
void mw_auth_sweep(struct mw_conn *c, uint64_t now_ms, uint64_t wall_ms);

/* Counters for /metrics. */
struct mw_auth_stats {
    uint64_t verified, refused, refreshed, expired, wait_timeouts;
};
extern struct mw_auth_stats mw_auth_stats;

#endif
