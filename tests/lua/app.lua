-- A fixture app for the runner's own tests: it refuses, kicks, sleeps, raises and
-- sends later on request.
local mw = require "moonwire"

local app = mw.app()
local gone = {} -- conn id -> true once its disconnect handler ran

function app.connect(conn)
  if conn.user == "mallory" then return false, "banned" end
end

function app.disconnect(conn)
  gone[conn.id] = true
end

app:on("whoami", function(conn)
  return { user = conn.user, id = conn.id }
end)

app:on("kick", function(conn)
  conn:send({ type = "bye" })
  conn:close(4000, "kicked")
end)

app:on("slow", function(_, msg)
  mw.sleep(msg.data)
  return "slept"
end)

app:on("boom", function()
  error("boom")
end)

app:on("later", function(conn, msg)
  mw.after(msg.data, function() conn:send({ type = "later" }) end)
end)

-- The conn object is the same value in every handler of a connection, whatever ran
-- in between (collections included), so apps can key tables by it.
local seen = {}
app:on("mark", function(conn)
  seen[conn] = (seen[conn] or 0) + 1
  collectgarbage()
  collectgarbage()
  return seen[conn]
end)

app:on("gone", function(_, msg)
  return gone[msg.data] == true
end)

return app
