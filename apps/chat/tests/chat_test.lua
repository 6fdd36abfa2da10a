-- Tests of the chat app (docs/protocol.md, "The chat app").
-- Run: moonwire test apps/chat/tests   (docs/testing.md)
-- The tests share one server: each uses rooms of its own.
local t = require "moonwire.test"
local mw = require "moonwire"
local json = mw.json

local function by_user(members)
  local copy = {}
  for i, m in ipairs(members) do copy[i] = m end
  table.sort(copy, function(a, b) return a.user < b.user end)
  return copy
end

-- Connects user to /chat and joins room (with a name when given): client, ack data.
local function joined(user, room, name)
  local c = t.connect("/chat", user)
  local ack = c:request("join", { room = room, data = name and { name = name } or nil })
  t.eq(ack.type, "ack", user .. " joins " .. room)
  return c, ack.data
end

t.test("hello names the connection, the node and the user", function()
  local ana = t.connect("/chat", "ana")
  t.eq(ana.hello.conn, ana.id)
  t.eq(ana.hello.user, "ana")
  t.eq(ana.hello.node, mw.node_id())
  t.eq(type(ana.hello.heartbeat), "number")
  local anon = t.connect("/chat")
  t.match(anon.hello.user, "^anon%-%x+$")
  t.eq(anon.user, anon.hello.user)
end)

t.test("join acks the members, an empty history, seq 0 and an epoch", function()
  local _, ack = joined("ana", "join-ack", "Ana")
  t.eq(ack.room, "join-ack")
  t.eq(ack.members, { { user = "ana", name = "Ana", conns = 1 } })
  t.eq(ack.history, {})
  t.ok(json.is_array(ack.history), "history is a JSON array")
  t.eq(ack.seq, 0)
  t.match(ack.epoch, "^%x%x%x%x%x%x%x%x%x%x%x%x$")
end)

t.test("join validates the room and the name", function()
  local ana = t.connect("/chat", "ana")
  local err = ana:request("join", { data = { name = "Ana" } })
  t.eq(err, { type = "error", id = 1, code = "bad_message", message = "room is required" })
  err = ana:request("join", { room = "join-bad", data = { name = string.rep("x", 65) } })
  t.eq(err.message, "name must be a string of at most 64 bytes")
  err = ana:request("join", { room = "join-bad", data = "Ana" })
  t.eq(err.message, "data must be an object")
end)

t.test("a join is announced to the others, not to the joiner", function()
  local ana = joined("ana", "join-event")
  local bob, ack = joined("bob", "join-event", "Bob")
  t.eq(ana:expect("presence:join"),
    { type = "presence:join", room = "join-event", data = { user = "bob", name = "Bob", conns = 1 } })
  t.eq(by_user(ack.members), { { user = "ana", conns = 1 }, { user = "bob", name = "Bob", conns = 1 } })
  bob:refute("presence:join")
end)

t.test("two connections of one user are one member", function()
  local bob = joined("bob", "tabs")
  local ana1 = joined("ana", "tabs")
  bob:expect({ type = "presence:join", data = { user = "ana" } })
  local ana2, ack = joined("ana", "tabs")
  t.eq(by_user(ack.members), { { user = "ana", conns = 2 }, { user = "bob", conns = 1 } })
  bob:refute("presence:join")
  ana2:close()
  bob:refute("presence:leave")
  ana1:close()
  t.eq(bob:expect("presence:leave").data, { user = "ana" })
end)

t.test("chat:message reaches every member, the sender included", function()
  local ana = joined("ana", "messages")
  local bob = joined("bob", "messages")
  local before = mw.now()
  local ack = ana:request("chat:message", { room = "messages", data = { text = "hello" } })
  t.eq(ack, { type = "ack", id = 2, data = { seq = 1 } })
  for _, c in ipairs({ ana, bob }) do
    local ev = c:expect("chat:message")
    t.ok(ev.ts >= before and ev.ts <= mw.now(), "ts is the time of the message")
    ev.ts = nil
    t.eq(ev, { type = "chat:message", room = "messages", from = "ana", data = { text = "hello" }, seq = 1 })
  end
  t.eq(bob:request("chat:message", { room = "messages", data = "hi" }).data.seq, 2)
  t.eq(ana:expect("chat:message").seq, 2)
end)

t.test("a non-member's chat:message gets not_in_room", function()
  local ana = t.connect("/chat", "ana")
  local err = ana:request("chat:message", { room = "not-joined", data = "hi" })
  t.eq(err, { type = "error", id = 1, code = "not_in_room", message = "join room 'not-joined' first" })
  err = ana:request("chat:message", { data = "hi" })
  t.eq({ err.code, err.message }, { "bad_message", "room is required" })
end)

t.test("a later join gets the history, oldest first, with the same epoch", function()
  local ana, first = joined("ana", "history")
  ana:request("chat:message", { room = "history", data = "one" })
  ana:request("chat:message", { room = "history", data = "two" })
  local _, ack = joined("bob", "history")
  t.eq(ack.seq, 2)
  t.eq(ack.epoch, first.epoch)
  t.eq(#ack.history, 2)
  for i, text in ipairs({ "one", "two" }) do
    local ev = ack.history[i]
    t.eq({ ev.type, ev.room, ev.from, ev.data, ev.seq }, { "chat:message", "history", "ana", text, i })
  end
end)

t.test("leave acks and tells the others; then the room is not_in_room", function()
  local ana = joined("ana", "leaving")
  local bob = joined("bob", "leaving")
  ana:expect("presence:join")
  t.eq(bob:request("leave", { room = "leaving" }).data, { room = "leaving" })
  t.eq(ana:expect("presence:leave"), { type = "presence:leave", room = "leaving", data = { user = "bob" } })
  t.eq(bob:request("leave", { room = "leaving" }).code, "not_in_room")
  t.eq(bob:request("chat:message", { room = "leaving", data = "x" }).code, "not_in_room")
  ana:refute("chat:message")
end)

t.test("disconnecting leaves every room", function()
  local ana = joined("ana", "gone-1")
  ana:request("join", { room = "gone-2" })
  local bob = joined("bob", "gone-1")
  bob:request("join", { room = "gone-2" })
  bob:close()
  ana:expect({ type = "presence:leave", room = "gone-1", data = { user = "bob" } })
  ana:expect({ type = "presence:leave", room = "gone-2", data = { user = "bob" } })
end)

t.test("typing:start and typing:stop reach the other members only", function()
  local ana = joined("ana", "typing")
  local bob = joined("bob", "typing")
  ana:send({ type = "typing:start", room = "typing" })
  t.eq(bob:expect("typing"), { type = "typing", room = "typing", data = { user = "ana", typing = true } })
  ana:send({ type = "typing:stop", room = "typing" })
  t.eq(bob:expect("typing").data, { user = "ana", typing = false })
  ana:refute("typing")
  ana:send({ type = "typing:stop", room = "typing" }) -- not typing: nothing to say
  bob:refute("typing")
  t.eq(bob:request("typing:start", { room = "elsewhere" }).code, "not_in_room")
end)

t.test("repeated typing:start broadcasts once per 2 s", function()
  local ana = joined("ana", "throttle")
  local bob = joined("bob", "throttle")
  for _ = 1, 3 do ana:send({ type = "typing:start", room = "throttle" }) end
  bob:expect({ type = "typing", data = { typing = true } })
  bob:refute("typing", 0.3)
end)

t.test("typing stops by itself after 5 s without a refresh", function()
  local ana = joined("ana", "auto-stop")
  local bob = joined("bob", "auto-stop")
  ana:send({ type = "typing:start", room = "auto-stop" })
  bob:expect({ type = "typing", data = { typing = true } })
  local started = mw.now()
  bob:refute("typing", 4.5)
  bob:expect({ type = "typing", data = { user = "ana", typing = false } }, 1.5)
  t.ok(mw.now() - started >= 4800, "not before 5 s")
end)

t.test("leaving while typing sends typing false, then presence:leave", function()
  local ana = joined("ana", "typing-leave")
  local bob = joined("bob", "typing-leave")
  ana:send({ type = "typing:start", room = "typing-leave" })
  bob:expect({ type = "typing", data = { typing = true } })
  ana:request("leave", { room = "typing-leave" })
  t.eq(bob:next(), { type = "typing", room = "typing-leave", data = { user = "ana", typing = false } })
  t.eq(bob:next(), { type = "presence:leave", room = "typing-leave", data = { user = "ana" } })
end)

t.test("presence:list lists the members and counts them", function()
  local ana = joined("ana", "list", "Ana")
  joined("bob", "list")
  joined("bob", "list")
  local ack = ana:request("presence:list", { room = "list" })
  t.eq(ack.data.count, 2)
  t.eq(by_user(ack.data.members), { { user = "ana", name = "Ana", conns = 1 }, { user = "bob", conns = 2 } })
  local carl = t.connect("/chat", "carl")
  t.eq(carl:request("presence:list", { room = "list" }).code, "not_in_room")
end)

t.test("a repeated id gets the first reply and the handler runs once", function()
  local ana = joined("ana", "dedup")
  local bob = joined("bob", "dedup")
  local first = ana:request("chat:message", { room = "dedup", data = "once", id = "m-1" })
  t.eq(first.type, "ack")
  local again = ana:request("chat:message", { room = "dedup", data = "once", id = "m-1" })
  t.eq(again, first)
  t.eq(bob:expect("chat:message").seq, first.data.seq)
  bob:refute("chat:message")
  ana:expect("chat:message")
  ana:refute("chat:message")
end)

t.test("sync returns the messages after since, and reset with all kept for another epoch", function()
  local ana = joined("ana", "sync")
  local info = ana:request("presence:list", { room = "sync" })
  t.eq(info.type, "ack")
  local first = ana:request("chat:message", { room = "sync", data = "a" }).data.seq
  ana:request("chat:message", { room = "sync", data = "b" })
  ana:request("chat:message", { room = "sync", data = "c" })
  local bob = t.connect("/chat", "bob")
  local epoch = bob:request("join", { room = "sync" }).data.epoch
  local s = bob:request("sync", { room = "sync", data = { since = first, epoch = epoch } })
  t.eq(s.type, "ack")
  t.eq(s.data.reset, false)
  t.eq(#s.data.messages, 2)
  t.eq(s.data.messages[1].data, "b")
  t.eq(s.data.messages[2].data, "c")
  local other = bob:request("sync", { room = "sync", data = { since = first, epoch = "nope" } })
  t.eq(other.data.reset, true)
  t.eq(#other.data.messages, 3) -- since counted in another epoch: everything kept
  local bad = bob:request("sync", { room = "sync", data = { since = -1 } })
  t.eq(bad.type, "error")
  t.eq(bad.code, "bad_message")
end)

-- The embedded default mounts /chat with `options: { mentions: true }`.
t.test("a mention of a member lands in that member's inbox; others are not notified", function()
  local ana = joined("men-ana", "mentions", "Ana")
  local bob = joined("men-bob", "mentions", "Bob")
  t.connect("/chat", "men-zed") -- not in the room
  local ack = ana:request("chat:message", { room = "mentions",
    data = { text = "hi @men-bob and @men-zed and @men-ana, @men-bob", name = "Ana" } })
  t.eq(ack.type, "ack")
  local items = mw.inbox.list("men-bob")
  t.eq(#items, 1, "one notification for bob, however often he is named")
  t.eq(items[1].data, { kind = "mention", from = "men-ana", name = "Ana", room = "mentions",
    text = "hi @men-bob and @men-zed and @men-ana, @men-bob" })
  t.eq(mw.inbox.list("men-zed"), {}, "not a member of the room")
  t.eq(mw.inbox.list("men-ana"), {}, "no notification for mentioning yourself")
  bob:request("chat:message", { room = "mentions", data = "@men-ana in plain data is no text" })
  t.eq(mw.inbox.list("men-ana"), {})
end)
