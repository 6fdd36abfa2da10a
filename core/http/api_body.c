/* api_body.c - the HTTP API's request bodies (api_body.h). */
#include "http/api_body.h"

#include <stdio.h>
#include <string.h>

#include <lauxlib.h>

#include "base/lua_json.h"
#include "rooms/room.h"

static lua_State *J; /* JSON only */

void mw_api_body_shutdown(void)
{
    if (J)
        lua_close(J);
    J = NULL;
}

void mw_api_request_free(struct mw_api_request *req)
{
    mw_buf_free(&req->json);
}

static int valid_type(const char *t, size_t n)
{
    if (n < 1 || n > 64)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!t[i] || !strchr("abcdefghijklmnopqrstuvwxyz0123456789_.:-", t[i]))
            return 0;
    return 1;
}

/* The string field `name` of the body object at index 1, or NULL. */
static const char *field(const char *name, size_t *len)
{
    lua_getfield(J, 1, name);
    const char *s = lua_type(J, -1) == LUA_TSTRING ? lua_tolstring(J, -1, len) : NULL;
    lua_pop(J, 1); /* the string stays alive: the body table holds it */
    return s;
}

static int bad(const char **code, const char *c, char *msg, size_t msglen, const char *text)
{
    *code = c;
    if (text != msg)
        snprintf(msg, msglen, "%s", text);
    lua_settop(J, 0);
    return -1;
}

static int parse_user(struct mw_api_request *req, const char **code, char *msg, size_t msglen)
{
    size_t ulen = 0;
    const char *user = field("user", &ulen);
    const char *why = user ? mw_user_id_error(user, ulen) : "user must be a string of 1..128 bytes";
    if (why)
        return bad(code, "bad_message", msg, msglen, why);
    memcpy(req->user, user, ulen + 1);
    return 0;
}

static int parse_publish(struct mw_api_request *req, const char **code, char *msg, size_t msglen)
{
    size_t rlen = 0, tlen = 0;
    const char *room = field("room", &rlen), *type = field("type", &tlen);
    if (!room || mw_room_name_error(room, rlen))
        return bad(code, "bad_message", msg, msglen, "room must be a string of 1..128 bytes");
    if (!type || !valid_type(type, tlen))
        return bad(code, "bad_message", msg, msglen, "type must be 1..64 characters of a-z 0-9 _ . : -");
    memcpy(req->room, room, rlen + 1);
    memcpy(req->type, type, tlen + 1);
    lua_createtable(J, 0, 3);
    lua_pushstring(J, type);
    lua_setfield(J, -2, "type");
    lua_pushstring(J, room);
    lua_setfield(J, -2, "room");
    lua_getfield(J, 1, "data");
    lua_setfield(J, -2, "data");
    if (mw_json_encode(J, lua_gettop(J), &req->json, msg, msglen) < 0)
        return bad(code, "bad_message", msg, msglen, msg);
    return 0;
}

static int parse_notify(struct mw_api_request *req, size_t max_item, const char **code, char *msg,
                        size_t msglen)
{
    if (parse_user(req, code, msg, msglen) < 0)
        return -1;
    lua_getfield(J, 1, "data");
    if (lua_isnil(J, -1) || (lua_islightuserdata(J, -1) && !lua_touserdata(J, -1)))
        return bad(code, "bad_message", msg, msglen, "data is required (any JSON value but null)");
    if (mw_json_encode(J, -1, &req->json, msg, msglen) < 0)
        return bad(code, "bad_message", msg, msglen, msg);
    if (req->json.len > max_item) {
        snprintf(msg, msglen, "data is %zu bytes of JSON, over inbox.max_item (%zu)",
                 req->json.len, max_item);
        return bad(code, "bad_message", msg, msglen, msg);
    }
    return 0;
}

int mw_api_body_parse(enum mw_api_call call, const char *body, size_t len, size_t max_item,
                      struct mw_api_request *req, const char **code, char *msg, size_t msglen)
{
    memset(req, 0, sizeof *req);
    if (!J)
        J = luaL_newstate();
    lua_settop(J, 0);
    if (!len)
        return bad(code, "bad_json", msg, msglen, "the request body is empty (send a JSON object)");
    if (mw_json_decode(J, body, len, msg, msglen) < 0)
        return bad(code, "bad_json", msg, msglen, msg);
    if (!lua_istable(J, -1) || mw_json_is_array(J, -1))
        return bad(code, "bad_message", msg, msglen, "the body must be a JSON object");
    int rc = call == MW_API_PUBLISH ? parse_publish(req, code, msg, msglen)
           : call == MW_API_NOTIFY  ? parse_notify(req, max_item, code, msg, msglen)
                                    : parse_user(req, code, msg, msglen);
    lua_settop(J, 0);
    if (rc < 0)
        mw_api_request_free(req);
    return rc;
}
