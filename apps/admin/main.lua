-- The admin page's live feed (/admin). The server mounts this app at /admin/ws by
-- itself when `api.keys` are configured. A connection proves it holds an API key with
-- `admin:auth`; it then gets this node's snapshot at once and every second, and with
-- Redis every other node's too: each node broadcasts its own into one room that all
-- admin pages of the cluster are in.
local mw = require "moonwire"
local admin = require "moonwire.admin"

local app = mw.app()

local ROOM = "moonwire:admin" -- room names are one namespace: a name apps will not use

app:on("admin:auth", function(conn, msg)
  local key = type(msg.data) == "table" and msg.data.key
  if type(key) ~= "string" or not admin.key_ok(key) then
    mw.log.warn("admin auth failed", { conn = conn.id, remote = conn.remote })
    mw.fail("unauthorized", "wrong API key")
  end
  conn:join(ROOM)
  conn:send(admin.snapshot())
  return { node = mw.node_id() }
end)

-- Every second, when some admin page anywhere watches (presence is cluster-wide with
-- Redis), this node's snapshot goes to all of them.
mw.every(1, function()
  local _, watching = mw.presence.list(ROOM, 1)
  if watching and watching > 0 then mw.rooms.broadcast(ROOM, admin.snapshot()) end
end)

return app
