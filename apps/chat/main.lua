-- The chat app (SPEC section 6): rooms with presence, typing indicators, and
-- sequenced messages kept in history.
local mw = require "moonwire"

local app = mw.app()

local function check_name(data)
  if data == nil then return nil end
  if type(data) ~= "table" then mw.fail("bad_message", "data must be an object") end
  local name = data.name
  if name ~= nil and (type(name) ~= "string" or #name > 64) then
    mw.fail("bad_message", "name must be a string of at most 64 bytes")
  end
  return name
end

app:on("join", function(conn, msg)
  local room = msg.room
  if room == nil then mw.fail("bad_message", "room is required") end
  local name = check_name(msg.data)
  conn:join(room, { name = name })
  local info = mw.rooms.info(room)
  return {
    room = room,
    members = (mw.presence.list(room)),
    history = (mw.rooms.history(room)),
    seq = info.seq,
    epoch = info.epoch,
  }
end)

app:on("leave", function(conn, msg)
  local room = mw.member_room(conn, msg)
  conn:leave(room)
  return { room = room }
end)

app:on("chat:message", function(conn, msg)
  local room = mw.member_room(conn, msg)
  local seq = mw.rooms.publish(room, {
    type = "chat:message", room = room, from = conn.user, data = msg.data,
  })
  return { seq = seq }
end)

-- Recovery after a reconnect: the events after `since` that are still kept, or
-- reset = true when some are gone (trimmed) or the room's history epoch changed.
app:on("sync", function(conn, msg)
  local room = mw.member_room(conn, msg)
  local d = msg.data
  if type(d) ~= "table" then mw.fail("bad_message", "data must be {since, epoch?}") end
  local since, epoch = d.since, d.epoch
  if type(since) ~= "number" or since < 0 or since ~= math.floor(since) then
    mw.fail("bad_message", "since must be a non-negative integer")
  end
  if epoch ~= nil and type(epoch) ~= "string" then
    mw.fail("bad_message", "epoch must be a string")
  end
  local info = mw.rooms.info(room)
  if since > info.seq then
    mw.fail("bad_message", "since " .. since .. " is ahead of the room (seq " .. info.seq .. ")")
  end
  local messages, complete = mw.rooms.history(room, since)
  return {
    messages = messages,
    seq = info.seq,
    epoch = info.epoch,
    reset = (epoch ~= nil and epoch ~= info.epoch) or not complete,
  }
end)

app:on("typing:start", function(conn, msg)
  mw.typing.start(conn, mw.member_room(conn, msg))
end)

app:on("typing:stop", function(conn, msg)
  mw.typing.stop(conn, mw.member_room(conn, msg))
end)

app:on("presence:list", function(conn, msg)
  local room = mw.member_room(conn, msg)
  local members, count = mw.presence.list(room)
  return { members = members, count = count }
end)

return app
