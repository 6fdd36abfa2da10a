/* auth.c - connection identity and token verification (auth.h).
 *
 * libjwt 1.10 checks signatures; everything else is checked here, before and after
 * it: libjwt takes the algorithm from the token's own header and verifies with
 * whatever key it is given, so the key is chosen here by the header's algorithm, and
 * only among the algorithms the configuration allows: `none` never, an HS* token is
 * checked with auth.jwt_secret only, RS* and ES* with the public key only, and only when
 * its type matches (an HS256 token "signed" with the public key's PEM text is the
 * classic confusion attack). libjwt 1.10 checks no claim: exp, nbf (with
 * auth.leeway), iss, aud and sub are checked here, on the token's payload as signed,
 * decoded by the project's JSON codec (so claims are valid UTF-8 before they reach
 * Lua or a frame). */
#include "net/auth.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jwt.h>
#include <lauxlib.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "base/buf.h"
#include "net/conn.h"
#include "base/log.h"
#include "base/lua_json.h"
#include "net/entry.h"
#include "base/util.h"

#define MAX_TOKEN 8192

struct mw_auth_stats mw_auth_stats;

static struct {
    bool on;                 /* a key is configured */
    bool required;
    bool user_param;
    unsigned char *secret;   /* HS* */
    int secret_len;
    char *pem;               /* RS* / ES*: the public key, PEM text */
    int pem_type;            /* EVP_PKEY_RSA or EVP_PKEY_EC */
    unsigned algs;           /* allowed: bit (1 << jwt_alg_t) */
    char *issuer, *audience;
    double leeway_s;
    uint64_t timeout_ms;
    lua_State *J;            /* JSON only */
} A;

/* One identity kept between the handshake's check and the open that follows it. */
static struct {
    void *tx;
    struct mw_identity id;
} kept;

/* ---- keys ---- */

static int fail_at(char *err, size_t errlen, const struct mw_config *cfg, int line,
                   const char *msg, const char *arg)
{
    snprintf(err, errlen, "%s:%d: auth.jwt_public_key: %s%s", cfg->source, line, msg, arg);
    return -1;
}

/* The PEM text of the public key: the value itself, or the file it names. */
static char *read_pem(const char *value)
{
    size_t len;
    if (!strncmp(value, "-----BEGIN", 10))
        return mw_strdup(value);
    return mw_read_file(value, &len);
}

/* EVP_PKEY_RSA, EVP_PKEY_EC (P-256, P-384 or P-521), or -1 when pem is no such key. */
static int key_type(const char *pem)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *k = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
    int type = k ? EVP_PKEY_base_id(k) : -1;
    if (type != EVP_PKEY_RSA && type != EVP_PKEY_EC)
        type = -1;
    EVP_PKEY_free(k);
    BIO_free(bio);
    return type;
}

static bool alg_is_hs(jwt_alg_t a)
{
    return a == JWT_ALG_HS256 || a == JWT_ALG_HS384 || a == JWT_ALG_HS512;
}

static bool alg_is_rs(jwt_alg_t a)
{
    return a == JWT_ALG_RS256 || a == JWT_ALG_RS384 || a == JWT_ALG_RS512;
}

static bool alg_is_es(jwt_alg_t a)
{
    return a == JWT_ALG_ES256 || a == JWT_ALG_ES384 || a == JWT_ALG_ES512;
}

int mw_auth_init(const struct mw_config *cfg, char *err, size_t errlen)
{
    mw_auth_shutdown();
    A.required = cfg->auth_required;
    A.user_param = cfg->user_param;
    A.leeway_s = (double)cfg->auth_leeway_ms / 1000.0;
    A.timeout_ms = cfg->auth_timeout_ms;
    if (cfg->jwt_secret) {
        A.secret = (unsigned char *)mw_strdup(cfg->jwt_secret);
        A.secret_len = (int)strlen(cfg->jwt_secret);
        if (A.secret_len < 32)
            mw_log_warn("auth.jwt_secret is shorter than 32 bytes: HS256 wants 256 bits of secret",
                        "bytes=%d", A.secret_len);
    }
    if (cfg->jwt_public_key) {
        int line = cfg->jwt_public_key_line;
        A.pem = read_pem(cfg->jwt_public_key);
        if (!A.pem)
            return fail_at(err, errlen, cfg, line, "cannot read ", cfg->jwt_public_key);
        A.pem_type = key_type(A.pem);
        if (A.pem_type < 0) {
            mw_auth_shutdown();
            return fail_at(err, errlen, cfg, line, "not an RSA or EC public key in PEM", "");
        }
    }
    for (jwt_alg_t a = JWT_ALG_HS256; a < JWT_ALG_TERM; a++) {
        bool usable = alg_is_hs(a) ? A.secret != NULL
                    : alg_is_rs(a) ? A.pem && A.pem_type == EVP_PKEY_RSA
                                   : A.pem && A.pem_type == EVP_PKEY_EC;
        bool listed = cfg->njwt_algorithms == 0;
        for (size_t i = 0; i < cfg->njwt_algorithms; i++)
            listed |= jwt_str_alg(cfg->jwt_algorithms[i]) == a;
        if (listed && usable)
            A.algs |= 1u << a;
        else if (listed && cfg->njwt_algorithms && !alg_is_hs(a)) {
            char what[96];
            snprintf(what, sizeof what, "%s needs %s key", jwt_alg_str(a), alg_is_rs(a) ? "an RSA" : "an EC");
            int line = cfg->jwt_public_key_line;
            mw_auth_shutdown();
            return fail_at(err, errlen, cfg, line, what, "");
        }
    }
    A.issuer = cfg->jwt_issuer ? mw_strdup(cfg->jwt_issuer) : NULL;
    A.audience = cfg->jwt_audience ? mw_strdup(cfg->jwt_audience) : NULL;
    A.on = A.secret || A.pem;
    if (A.on)
        A.J = luaL_newstate();
    return 0;
}

void mw_auth_shutdown(void)
{
    free(A.secret);
    free(A.pem);
    free(A.issuer);
    free(A.audience);
    if (A.J)
        lua_close(A.J);
    mw_identity_clear(&kept.id);
    kept.tx = NULL;
    memset(&A, 0, sizeof A);
}

void mw_identity_clear(struct mw_identity *id)
{
    free(id->claims_json);
    memset(id, 0, sizeof *id);
}

/* ---- tokens ---- */

/* Decodes base64url (no padding) s[0..n) into a malloc'd buffer; NULL when not. */
static char *b64url(const char *s, size_t n, size_t *out)
{
    static signed char map[256];
    if (!map['A' + 1]) {
        memset(map, -1, sizeof map);
        const char *al = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        for (int i = 0; i < 64; i++)
            map[(unsigned char)al[i]] = (signed char)i;
    }
    if (n % 4 == 1)
        return NULL;
    char *p = mw_malloc(n * 3 / 4 + 3);
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = map[(unsigned char)s[i]];
        if (v < 0) {
            free(p);
            return NULL;
        }
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            p[o++] = (char)(acc >> bits & 0xff);
        }
    }
    *out = o;
    return p;
}

/* Decodes one base64url JSON object segment onto J's stack; false when it is not. */
static bool push_segment(const char *s, size_t n)
{
    size_t len;
    char err[128], *json = b64url(s, n, &len);
    if (!json)
        return false;
    int rc = mw_json_decode(A.J, json, len, err, sizeof err);
    free(json);
    if (rc < 0)
        return false;
    if (!lua_istable(A.J, -1) || mw_json_is_array(A.J, -1)) {
        lua_settop(A.J, 0);
        return false;
    }
    return true;
}

/* Field `name` of the table at idx as a string, or NULL. */
static const char *str_field(int idx, const char *name, size_t *len)
{
    lua_getfield(A.J, idx, name);
    const char *s = lua_type(A.J, -1) == LUA_TSTRING ? lua_tolstring(A.J, -1, len) : NULL;
    lua_pop(A.J, 1); /* the table keeps the string alive */
    return s;
}

/* A NumericDate claim: 1 with *v, 0 absent, -1 present but not a finite number. */
static int num_field(int idx, const char *name, double *v)
{
    lua_getfield(A.J, idx, name);
    int t = lua_type(A.J, -1);
    int rc = t == LUA_TNIL ? 0 : t == LUA_TNUMBER && isfinite(lua_tonumber(A.J, -1)) ? 1 : -1;
    if (rc == 1)
        *v = lua_tonumber(A.J, -1);
    lua_pop(A.J, 1);
    return rc;
}

/* Whether `aud` (a string or an array of strings) names auth.audience. */
static bool has_audience(int idx)
{
    bool found = false;
    lua_getfield(A.J, idx, "aud");
    if (lua_type(A.J, -1) == LUA_TSTRING) {
        found = !strcmp(lua_tostring(A.J, -1), A.audience);
    } else if (lua_istable(A.J, -1)) {
        for (int i = 1; !found; i++) {
            lua_rawgeti(A.J, -1, i);
            if (lua_isnil(A.J, -1)) {
                lua_pop(A.J, 1);
                break;
            }
            found = lua_type(A.J, -1) == LUA_TSTRING && !strcmp(lua_tostring(A.J, -1), A.audience);
            lua_pop(A.J, 1);
        }
    }
    lua_pop(A.J, 1);
    return found;
}

/* The claims at idx: checked, then copied into id. 0 or -1 with *why. */
static int check_claims(int idx, struct mw_identity *id, const char **why)
{
    double now = (double)mw_wall_ms() / 1000.0, exp = 0, nbf = 0;
    size_t sublen = 0;
    int has_exp = num_field(idx, "exp", &exp), has_nbf = num_field(idx, "nbf", &nbf);
    if (has_exp < 0 || has_nbf < 0)
        return *why = "exp and nbf must be numbers", -1;
    if (has_exp && now > exp + A.leeway_s)
        return *why = "token expired", -1;
    if (has_nbf && now + A.leeway_s < nbf)
        return *why = "token not valid yet (nbf)", -1;
    if (A.issuer) {
        const char *iss = str_field(idx, "iss", NULL);
        if (!iss || strcmp(iss, A.issuer))
            return *why = "wrong issuer (iss)", -1;
    }
    if (A.audience && !has_audience(idx))
        return *why = "wrong audience (aud)", -1;
    const char *sub = str_field(idx, "sub", &sublen);
    if (!sub)
        return *why = "token has no sub", -1;
    if (mw_user_id_error(sub, sublen))
        return *why = "sub is not a valid user id (1..128 bytes of UTF-8, no control characters)", -1;
    struct mw_buf b = { 0 };
    char err[128];
    if (mw_json_encode(A.J, idx, &b, err, sizeof err) < 0) {
        mw_buf_free(&b);
        return *why = "claims cannot be encoded", -1;
    }
    mw_buf_putc(&b, '\0');
    id->kind = MW_ID_TOKEN;
    memcpy(id->user, sub, sublen + 1);
    id->claims_json = b.p;
    id->exp_ms = has_exp ? (uint64_t)(exp * 1000.0) : 0;
    return 0;
}

/* The key for alg, or NULL when alg is not allowed. */
static const unsigned char *key_for(jwt_alg_t alg, int *len)
{
    if (alg <= JWT_ALG_NONE || alg >= JWT_ALG_TERM || !(A.algs & (1u << alg)))
        return NULL;
    if (alg_is_hs(alg)) {
        *len = A.secret_len;
        return A.secret;
    }
    if ((alg_is_rs(alg) && A.pem_type != EVP_PKEY_RSA) || (alg_is_es(alg) && A.pem_type != EVP_PKEY_EC))
        return NULL;
    *len = (int)strlen(A.pem);
    return (const unsigned char *)A.pem;
}

static int verify(const char *token, size_t len, struct mw_identity *id, const char **why)
{
    if (len == 0 || len > MAX_TOKEN)
        return *why = "token is empty or longer than 8 KiB", -1;
    if (strspn(token, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.") != len)
        return *why = "malformed token", -1;
    const char *dot1 = memchr(token, '.', len);
    const char *dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
    if (!dot2 || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)))
        return *why = "malformed token (not header.payload.signature)", -1;

    /* The header, as the token says it: which algorithm, hence which key. */
    lua_settop(A.J, 0);
    if (!push_segment(token, (size_t)(dot1 - token)))
        return *why = "malformed token header", -1;
    const char *name = str_field(1, "alg", NULL), *typ = str_field(1, "typ", NULL);
    jwt_alg_t alg = name ? jwt_str_alg(name) : JWT_ALG_INVAL;
    if (typ && strcasecmp(typ, "JWT"))
        return lua_settop(A.J, 0), *why = "typ is not JWT", -1;
    int keylen = 0;
    const unsigned char *key = key_for(alg, &keylen);
    lua_settop(A.J, 0);
    if (!key)
        return *why = alg == JWT_ALG_NONE ? "alg none is not accepted" : "algorithm not accepted", -1;

    jwt_t *jwt = NULL;
    int rc = jwt_decode(&jwt, token, key, keylen); /* token is NUL-terminated at len */
    bool same = jwt && jwt_get_alg(jwt) == alg;
    jwt_free(jwt);
    if (rc || !same)
        return *why = "bad signature", -1;

    /* The payload as signed. */
    if (!push_segment(dot1 + 1, (size_t)(dot2 - dot1 - 1)))
        return *why = "malformed token payload", -1;
    rc = check_claims(1, id, why);
    lua_settop(A.J, 0);
    return rc;
}

int mw_auth_verify(const char *token, size_t len, struct mw_identity *id, const char **why)
{
    memset(id, 0, sizeof *id);
    if (!A.on)
        return *why = "tokens are not accepted here (no auth.jwt_secret or auth.jwt_public_key)", -1;
    int rc = verify(token, len, id, why);
    if (rc == 0)
        mw_auth_stats.verified++;
    else
        mw_auth_stats.refused++;
    return rc;
}

/* ---- the handshake ---- */

/* The token of the request: `Authorization: Bearer`, else the `token` parameter.
 * Returns its length (buf holds it), 0 for none, -1 when one is there but too long. */
static int request_token(const struct mw_open_req *r, char *buf, size_t cap)
{
    int n = r->header(r->tx, "authorization", buf, cap);
    if (n > 7 && !strncasecmp(buf, "Bearer ", 7)) {
        if ((size_t)n >= cap)
            return -1;
        memmove(buf, buf + 7, (size_t)n - 7 + 1);
        return n - 7;
    }
    n = r->query(r->tx, "token", buf, cap);
    if (n < 0)
        return 0;
    return (size_t)n >= cap || (size_t)n != strlen(buf) ? -1 : n;
}

static int user_param(const struct mw_open_req *r, struct mw_identity *id, const char **why)
{
    int n = r->query(r->tx, "user", id->user, sizeof id->user);
    if (n <= 0) { /* absent or empty: anonymous */
        id->user[0] = '\0';
        return 0;
    }
    *why = mw_user_id_error(id->user, (size_t)n); /* a cut value is too long: refused */
    if (*why) {
        id->user[0] = '\0';
        return 400;
    }
    id->kind = MW_ID_PARAM;
    return 0;
}

int mw_auth_identify(const struct mw_open_req *r, struct mw_identity *id, const char **why)
{
    memset(id, 0, sizeof *id);
    *why = NULL;
    int status = 0;
    if (A.on) {
        char *token = mw_malloc(MAX_TOKEN + 1);
        int n = request_token(r, token, MAX_TOKEN + 1);
        if (n < 0) {
            *why = "token is longer than 8 KiB";
            mw_auth_stats.refused++;
            status = 401;
        } else if (n > 0) {
            status = mw_auth_verify(token, (size_t)n, id, why) ? 401 : 0;
        } else if (A.required) {
            id->kind = MW_ID_WAIT;
        }
        free(token);
        if (status || id->kind != MW_ID_ANON)
            goto done;
    }
    if (A.user_param)
        status = user_param(r, id, why);
done:
    mw_identity_clear(&kept.id);
    kept.tx = status ? NULL : r->tx;
    if (!status) {
        kept.id = *id;
        kept.id.claims_json = id->claims_json ? mw_strdup(id->claims_json) : NULL;
    }
    return status;
}

bool mw_auth_take(void *tx, struct mw_identity *id)
{
    if (!tx || kept.tx != tx)
        return false;
    *id = kept.id;
    memset(&kept.id, 0, sizeof kept.id);
    kept.tx = NULL;
    return true;
}

/* ---- after the handshake ---- */

int mw_auth_message(struct mw_conn *c, const char *token, size_t len, const char **code,
                    const char **why)
{
    struct mw_identity id;
    *code = "unauthorized";
    if (!c->auth_wait_ms && !c->claims_json) {
        *code = "forbidden";
        *why = A.on ? "this connection has no token to refresh: send the token with the handshake "
                      "(Authorization: Bearer, or the token parameter)"
                    : "tokens are not accepted here (no auth.jwt_secret or auth.jwt_public_key)";
        return -1;
    }
    if (mw_auth_verify(token, len, &id, why) < 0)
        return -1;
    if (!c->auth_wait_ms && strcmp(id.user, c->user->id) != 0) {
        mw_identity_clear(&id);
        *code = "forbidden";
        *why = "the token is for another user";
        mw_auth_stats.refused++;
        return -1;
    }
    if (c->auth_wait_ms) {
        mw_conn_set_user(c, id.user);
        c->auth_wait_ms = 0;
    } else {
        mw_auth_stats.refreshed++;
    }
    free(c->claims_json);
    c->claims_json = id.claims_json;
    c->auth_exp_ms = id.exp_ms;
    return 0;
}

void mw_auth_sweep(struct mw_conn *c, uint64_t now_ms, uint64_t wall_ms)
{
    if (c->auth_wait_ms && now_ms >= c->auth_wait_ms) {
        mw_auth_stats.wait_timeouts++;
        mw_log_info("auth timeout", "conn=%s remote=%s", c->id, c->remote);
        c->auth_wait_ms = 0;
        mw_conn_close(c, 4001, "authentication timeout");
    } else if (c->auth_exp_ms && wall_ms > c->auth_exp_ms + (uint64_t)(A.leeway_s * 1000.0)) {
        mw_auth_stats.expired++;
        mw_log_info("token expired", "conn=%s user=%s", c->id, c->user->id);
        c->auth_exp_ms = 0;
        mw_conn_close(c, 4001, "token expired");
    }
}

int mw_auth_parse_message(const char *p, size_t len, char **token, size_t *tlen, const char **why)
{
    char err[128];
    size_t n = 0;
    *why = "authentication required: the first message must be "
           "{\"type\":\"auth\",\"data\":{\"token\":TOKEN}}";
    if (!A.J || mw_json_decode(A.J, p, len, err, sizeof err) < 0)
        return -1;
    int rc = -1;
    if (lua_istable(A.J, -1)) {
        const char *type = str_field(1, "type", NULL);
        lua_getfield(A.J, 1, "data");
        const char *t = lua_istable(A.J, -1) ? str_field(2, "token", &n) : NULL;
        if (type && !strcmp(type, "auth") && t) {
            *token = mw_strndup(t, n);
            *tlen = n;
            rc = 0;
        }
    }
    lua_settop(A.J, 0);
    return rc;
}

uint64_t mw_auth_wait_ms(void)
{
    return A.timeout_ms;
}
