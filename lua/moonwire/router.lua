-- router.lua - from frames to handlers: validates the envelope (docs/protocol.md),
-- answers ping, runs the app's handler and replies with ack or error.
-- The C core calls connect/message/raw/disconnect, each in a coroutine of its own
-- (a message's may be reused from an earlier one: script.c).
local json = require "moonwire.json"
local core = require "moonwire.core"
require "moonwire.conn" -- installs the conn metatable
local errors = require "moonwire.errors"

local type, tostring, xpcall, pcall, floor = type, tostring, xpcall, pcall, math.floor
local traceback = debug.traceback
local is_failure, null = errors.is_failure, json.null

local M = {}

-- Every error reply goes through here or past core.refused: counted for /metrics
-- (moonwire_errors_total) and logged at debug level.
local function send_error(conn, id, code, message, t)
  core.refused(conn, t, code)
  conn:send({ type = "error", id = id, code = code, message = message })
end

-- Keeps a failure as is; turns any other error into {err, traceback}.
local function on_error(e)
  if is_failure(e) then return e end
  return { err = tostring(e), tb = traceback("", 2) }
end

local function report(conn, what, ok, res, ...)
  if not ok and not is_failure(res) then
    core.report_error(conn, res.err, res.tb, what)
  end
  return ok, res, ...
end

-- Runs fn(...) and returns ok, results...; reports bugs to the log.
local function run(conn, what, fn, ...)
  return report(conn, what, xpcall(fn, on_error, ...))
end

local function valid_id(id)
  local t = type(id)
  if t == "string" then return #id >= 1 and #id <= 128 end
  return t == "number" and id == floor(id) and id >= -2^53 and id <= 2^53
end

-- Types and rooms that passed the checks below, remembered (up to a bound) because
-- the pattern matching runs in LuaJIT's interpreter, not its compiler: a client
-- sends the same few again and again.
local good_types, good_rooms, ngood = {}, {}, 0
local GOOD_MAX = 4096

local function remember(set, s)
  if ngood < GOOD_MAX then
    ngood = ngood + 1
    set[s] = true
  end
end

-- Returns the error message for a bad envelope, or nil.
local function check_envelope(msg)
  local t = msg.type
  if type(t) ~= "string" then return "type must be a string" end
  if not good_types[t] then
    if #t < 1 or #t > 64 or not t:find("^[a-z0-9_.:%-]+$") then
      return "type must be 1..64 characters of a-z 0-9 _ . : -"
    end
    remember(good_types, t)
  end
  local room = msg.room
  if room ~= nil and not good_rooms[room] then
    if type(room) ~= "string" or #room < 1 or #room > 128 then
      return "room must be a string of 1..128 bytes"
    end
    if room:find("%c") then return "room must not contain control characters" end
    remember(good_rooms, room)
  end
end

-- msg: the frame decoded by the core (script.c), or nil with err; msg.data, when an
-- object, is decoded on its first use: passed on untouched it goes out as the client's
-- own text (lua_json.c, "lazy data").
-- object: whether the frame's JSON is an object (script.c sees its first byte).
function M.message(app, conn, msg, err, binary, object)
  if binary then
    return send_error(conn, nil, "bad_message", "binary frames are not accepted on this route")
  end
  if msg == nil then return send_error(conn, nil, "bad_json", err) end
  if not object then
    return send_error(conn, nil, "bad_message", "a message must be a JSON object")
  end
  local id = msg.id
  if id == null then id = nil; msg.id = nil end
  if id ~= nil and not valid_id(id) then
    return send_error(conn, nil, "bad_message", "id must be a string or an integer")
  end
  local bad = check_envelope(msg)
  if bad then return send_error(conn, id, "bad_message", bad) end
  if msg.data == null then msg.data = nil end

  local t = msg.type
  if t == "ping" then
    return conn:send({ type = "pong", id = id, data = msg.data })
  elseif t == "auth" then -- a newer token for the same user, before the old one expires
    local d = msg.data
    local token = type(d) == "table" and d.token
    if type(token) ~= "string" then
      return send_error(conn, id, "bad_message", "data.token must be a string")
    end
    local res, code, message = core.auth(conn, token)
    if not res then return send_error(conn, id, code, message) end
    if id ~= nil then conn:send({ type = "ack", id = id, data = res }) end
    return
  elseif t == "dev:watch" and core.hot_reload() then -- wants dev:reload events (development:
    -- they carry reload errors with server paths, so only with dev.hot_reload on)
    conn:set("__dev_reload", true)
    if id ~= nil then conn:send({ type = "ack", id = id }) end
    return
  end
  local handler = app.handlers[t]
  if not handler then
    return send_error(conn, id, "unknown_type", "unknown message type '" .. t .. "'", t)
  end
  if id == nil then
    local ok, res = run(conn, t, handler, conn, msg)
    if not ok then
      if is_failure(res) then return send_error(conn, nil, res.code, res.message, t) end
      return send_error(conn, nil, "internal", "internal error", t)
    end
    return
  end

  -- A repeated id is answered with the first reply; the handler runs once. The
  -- coroutine's record in C keeps the id, its key and the session until the answer.
  local state, reply = core.dedup_begin(conn, id)
  if state == "done" then return conn:send(reply or { type = "ack", id = id }) end
  if state == "running" then return end
  local ok, res = run(conn, t, handler, conn, msg)
  local answer
  if ok then
    -- the usual case in one call: encoded, kept in the window, sent
    local acked, err = core.ack(conn, id, res)
    if acked then return end
    core.report_error(conn, "handler reply: " .. tostring(err), "", t)
    answer = { type = "error", id = id, code = "internal", message = "internal error" }
  elseif is_failure(res) then
    answer = { type = "error", id = id, code = res.code, message = res.message }
  else
    answer = { type = "error", id = id, code = "internal", message = "internal error" }
  end
  if answer.type == "error" then core.refused(conn, t, answer.code) end
  local encoded, frame = pcall(json.encode, answer)
  if not encoded then
    core.report_error(conn, "handler reply: " .. tostring(frame), "", t)
    frame = json.encode({ type = "error", id = id, code = "internal", message = "internal error" })
  end
  -- `unavailable` means "retry": the id leaves the window so that the retry runs.
  core.dedup_end(conn, frame, answer.code == "unavailable")
  conn:send(frame)
end

-- protocol: raw routes: every frame as it came.
function M.raw(app, conn, payload, binary)
  if app.message then run(conn, "message", app.message, conn, payload, binary) end
end

function M.connect(app, conn)
  if not app.connect then return end
  local ok, res, reason = run(conn, "connect", app.connect, conn)
  if not ok then
    conn:close(1011, "internal error")
  elseif res == false then
    conn:close(4001, reason or "rejected")
  end
end

function M.disconnect(app, conn)
  if app.disconnect then run(conn, "disconnect", app.disconnect, conn) end
end

-- HTTP API calls (lua_http.c): app:api handlers, answered with a status and a JSON body
-- like the server's own /api/* endpoints.
local http_status = {
  bad_message = 400, unauthorized = 401, forbidden = 403, not_found = 404,
  conflict = 409, rate_limited = 429, unavailable = 503,
}

function M.has_api(app, name)
  return type(app.apis) == "table" and type(app.apis[name]) == "function"
end

-- Returns the function the call's coroutine runs: the handler's result goes to
-- done(status, body).
function M.api_call(app, name, args, done)
  return function()
    local ok, res = run(nil, "api:" .. name, app.apis[name], args)
    local status, body
    if ok then
      local encoded, text = pcall(json.encode, res == nil and {} or res)
      if encoded then
        status, body = 200, text
      else
        core.report_error(nil, "api reply: " .. tostring(text), "", "api:" .. name)
      end
    elseif is_failure(res) then
      status = http_status[res.code] or 500
      body = json.encode({ error = res.code, message = res.message })
    end
    if not status then
      status, body = 500, json.encode({ error = "internal", message = "internal error" })
    end
    done(status, body .. "\n")
  end
end

-- After a hot reload, in the new state.
function M.reload(app)
  if app.reload then run(nil, "reload", app.reload) end
end

-- Called once when a script is loaded: it must return an app.
function M.check_app(app)
  if type(app) ~= "table" or type(app.handlers) ~= "table" then
    error("the script must return an app (local app = mw.app() ... return app)", 0)
  end
  for _, name in ipairs({ "connect", "disconnect", "reload", "message", "can_join" }) do
    if app[name] ~= nil and type(app[name]) ~= "function" then
      error("app." .. name .. " must be a function", 0)
    end
  end
end

return M
