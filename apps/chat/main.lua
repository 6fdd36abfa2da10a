-- The chat app (docs/protocol.md, "The chat app"): rooms with presence, typing indicators, and
-- sequenced messages kept in history.
local mw = require "moonwire"

local app = mw.app()

-- Route option `mentions: true` (on in the embedded default): "@user" in a message's
-- `text` puts a notification in that user's inbox (the notify app delivers it) when
-- the user is a member of the room; at most MAX_MENTIONS users per message.
local MENTIONS = mw.route().options.mentions == true
local MAX_MENTIONS = 5

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
  -- Clustered, history comes from Redis; while it is down the room works on this
  -- node only: no history, and an empty epoch so that a later sync says reset.
  local history, _, seq, epoch = mw.rooms.history(room)
  return {
    room = room,
    members = (mw.presence.list(room)),
    history = history or mw.json.array(),
    seq = seq or 0,
    epoch = epoch or "",
  }
end)

app:on("leave", function(conn, msg)
  local room = mw.member_room(conn, msg)
  conn:leave(room)
  return { room = room }
end)

local function notify_mentions(conn, room, data)
  local text = type(data) == "table" and data.text
  if type(text) ~= "string" or not text:find("@", 1, true) then return end
  local wanted, n = {}, 0
  for user in text:gmatch("@([%w_.-]+)") do
    if user ~= conn.user and not wanted[user] and n < MAX_MENTIONS then
      wanted[user] = true
      n = n + 1
    end
  end
  if n == 0 then return end
  local name = type(data.name) == "string" and data.name or nil
  for _, m in ipairs((mw.presence.list(room))) do
    if wanted[m.user] then
      -- The message is out already: a mention that cannot be stored is only logged.
      local ok, err = mw.inbox.push(m.user, {
        kind = "mention", from = conn.user, name = name, room = room, text = text:sub(1, 200),
      })
      if not ok then mw.log.warn("mention not stored", { user = m.user, err = err }) end
    end
  end
end

app:on("chat:message", function(conn, msg)
  local room = mw.member_room(conn, msg)
  local seq, err = mw.rooms.publish(room, {
    type = "chat:message", room = room, from = conn.user, data = msg.data,
  })
  -- "unknown": Redis took it but its reply was lost. Never ack what may be lost; the
  -- client resends the same id, which is not published twice. ("unavailable": Redis
  -- is down, the room's members on this node got it without seq: ack without seq.)
  if err == "unknown" then
    mw.fail("unavailable", "the message may not have been sent: send it again with the same id")
  end
  if MENTIONS then notify_mentions(conn, room, msg.data) end
  return { seq = seq }
end)

-- Recovery after a reconnect: the events after `since` that are still kept, with
-- reset = false when none is missing. reset = true when some are gone (trimmed), or
-- when the room's history epoch changed (then messages are all the room keeps now).
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
  local messages, complete, seq, room_epoch = mw.rooms.history(room, since)
  if not messages then mw.fail("unavailable", "history is unavailable, try again") end
  if since > seq and (epoch == nil or epoch == room_epoch) then
    mw.fail("bad_message", "since " .. since .. " is ahead of the room (seq " .. seq .. ")")
  end
  local reset = not complete
  if epoch ~= nil and epoch ~= room_epoch then
    -- `since` counts in another incarnation of the room's history: start over with
    -- everything the current one keeps.
    local all, _, now_seq, now_epoch = mw.rooms.history(room, 0)
    if not all then mw.fail("unavailable", "history is unavailable, try again") end
    messages, seq, room_epoch, reset = all, now_seq, now_epoch, true
  end
  return {
    messages = messages,
    seq = seq,
    epoch = room_epoch,
    reset = reset,
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
