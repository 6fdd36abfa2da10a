-- moonwire - the Lua API for route scripts (docs/lua-api.md).
--
--   local mw = require "moonwire"
--   local app = mw.app()
--   app:on("hello", function(conn, msg) return { hi = conn.user } end)
--   return app
local core = require "moonwire.core"
local rooms = require "moonwire.rooms"
local json = require "moonwire.json"
local errors = require "moonwire.errors"
local timer = require "moonwire.timer"

local M = {
  json = json,
  fail = errors.fail,
  now = core.now,
  sleep = core.sleep,
  node_id = core.node_id,
  route = core.route,
  send_user = rooms.send_user,
  store = require "moonwire.store",
  -- Raw Redis commands when `redis:` is configured: mw.redis.call("GET", key).
  redis = require "moonwire.redis",
  -- Users' notification inboxes (the notify app): push(user, data) -> id,
  -- list(user) -> items, read(user, ids) -> ids; nil, err on failure.
  inbox = require "moonwire.inbox",
  -- Timers run their function in a new coroutine: mw.after(0.5, fn), mw.every(10, fn);
  -- both return a handle with :cancel() and :pending().
  after = timer.after,
  every = timer.every,
}

-- mw.log(level, msg, fields?) and the shortcuts mw.log.info(msg, fields?) etc.
M.log = setmetatable({}, {
  __call = function(_, level, msg, fields) core.log(level, msg, fields) end,
})
for _, level in ipairs({ "debug", "info", "warn", "error" }) do
  M.log[level] = function(msg, fields) core.log(level, msg, fields) end
end

-- Rooms: broadcast (ephemeral), publish (sequenced, kept in history), history, info.
M.rooms = {
  broadcast = rooms.broadcast,
  publish = rooms.publish,
  history = rooms.history,
  info = rooms.info,
}

-- Presence: mw.presence.list(room, limit?) -> members, count
M.presence = {
  list = rooms.presence,
}

-- Typing indicators: start/stop return true, or nil, "not_in_room".
M.typing = {
  start = function(conn, room) return rooms.typing(conn, room, true) end,
  stop = function(conn, room) return rooms.typing(conn, room, false) end,
}

-- mw.config_error(path, message): raises an error about the route's options that
-- points at their line in the config file, like the server's own config errors:
--   moonwire.yaml:14: routes./booking.options.venues.bistro.tables.t1: capacity must be ...
-- path lists the keys (and 1-based list positions) under `options`; the line is that of
-- the deepest part of the path the file has. At load time this stops the server from
-- starting and `moonwire check` from passing.
function M.config_error(path, message)
  local r = core.route()
  local node, line = r.options_lines, nil
  local where = "routes." .. r.path .. ".options"
  for _, key in ipairs(path) do
    where = where .. (type(key) == "number" and "[" .. key .. "]" or "." .. tostring(key))
    node = node and type(node[2]) == "table" and node[2][key] or nil
    line = node and node[1] or line
  end
  line = line or (r.options_lines and r.options_lines[1])
  local file = (r.source or r.path) .. (line and ":" .. line or "")
  error(file .. ": " .. where .. ": " .. message, 0)
end

-- The room of msg, checked: fails with bad_message when absent and not_in_room when
-- conn is not a member.
function M.member_room(conn, msg)
  local room = msg.room
  if room == nil then errors.fail("bad_message", "room is required") end
  if not conn:in_room(room) then
    errors.fail("not_in_room", "join room '" .. room .. "' first")
  end
  return room
end

-- Apps.
local App = {}
App.__index = App

function App:on(type_, handler)
  assert(type(type_) == "string", "app:on(type, handler): type must be a string")
  assert(type(handler) == "function", "app:on(type, handler): handler must be a function")
  if type_ == "ping" then error("app:on: 'ping' is answered by the core", 2) end
  self.handlers[type_] = handler
  return self
end

-- app:api(name, handler): answers an HTTP API call with handler(args): its result is
-- the JSON body (200), mw.fail(code, message) an error status (404 for not_found...).
function App:api(name, handler)
  assert(type(name) == "string", "app:api(name, handler): name must be a string")
  assert(type(handler) == "function", "app:api(name, handler): handler must be a function")
  self.apis[name] = handler
  return self
end

function M.app()
  return setmetatable({ handlers = {}, apis = {} }, App)
end

return M
