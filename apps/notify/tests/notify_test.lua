-- Tests of the notify app (docs/protocol.md, "The notify app") and of
-- mw.inbox underneath it. Run: moonwire test apps/notify/tests   (docs/testing.md)
-- The tests share one server (the embedded config: inbox size 100): each uses users
-- and topics of its own.
local t = require "moonwire.test"
local mw = require "moonwire"
local json = mw.json

-- Connects user to /notify: the client and its backlog items.
local function connected(user)
  local c = t.connect("/notify", user)
  local backlog = c:expect("notify:backlog")
  t.ok(json.is_array(backlog.data.items), "items is a JSON array")
  return c, backlog.data.items
end

local function ids_of(items)
  local out = {}
  for i, it in ipairs(items) do out[i] = it.id end
  return out
end

t.test("a user without notifications gets an empty backlog on connect", function()
  local _, items = connected("nobody")
  t.eq(items, {})
end)

t.test("pushed while offline: the backlog has them, oldest first, with id and ts", function()
  local before = mw.now()
  local id1 = t.ok(mw.inbox.push("off1", { text = "one" }))
  local id2 = t.ok(mw.inbox.push("off1", "two"))
  t.ok(id1 ~= id2, "ids differ")
  t.ok(id1 < id2, "ids are ordered by time")
  local _, items = connected("off1")
  t.eq(ids_of(items), { id1, id2 })
  t.eq(items[1].data, { text = "one" })
  t.eq(items[2].data, "two")
  t.ok(items[1].ts >= before and items[1].ts <= mw.now(), "ts is the push time (ms)")
end)

t.test("a push reaches every device of the user live, and nobody else", function()
  local phone = connected("live1")
  local laptop = connected("live1")
  local other = connected("live2")
  local id = mw.inbox.push("live1", { n = 1 })
  local ev = phone:expect("notify")
  t.eq(ev.data.id, id)
  t.eq(ev.data.data, { n = 1 })
  t.eq(type(ev.data.ts), "number")
  t.eq(laptop:expect("notify").data.id, id)
  other:refute("notify")
end)

t.test("a live notification stays unread until notify:read", function()
  local phone = connected("unread1")
  local id = mw.inbox.push("unread1", "hello")
  phone:expect("notify")
  local _, items = connected("unread1")
  t.eq(ids_of(items), { id })
end)

t.test("notify:read acks the ids it removed and tells every device", function()
  local id1 = mw.inbox.push("read1", 1)
  local id2 = mw.inbox.push("read1", 2)
  local phone = connected("read1")
  local laptop = connected("read1")
  local ack = phone:request("notify:read", { data = { ids = { id1, "no-such-id", 42 } } })
  t.eq(ack.type, "ack")
  t.eq(ack.data, { ids = { id1 } })
  t.eq(laptop:expect("notify:read").data, { ids = { id1 } })
  t.eq(phone:expect("notify:read").data, { ids = { id1 } })
  local _, items = connected("read1")
  t.eq(ids_of(items), { id2 })
  -- Reading again changes nothing and tells nobody.
  ack = phone:request("notify:read", { data = { ids = { id1 } } })
  t.eq(ack.data, { ids = {} })
  t.ok(json.is_array(ack.data.ids), "an empty array, not an object")
  laptop:refute("notify:read")
end)

t.test("notify:read refuses bad ids with bad_message", function()
  local c = connected("readbad")
  local cases = {
    { nil, "data.ids must be an array of notification ids" },
    { { ids = "abc" }, "data.ids must be an array of notification ids" },
    { { ids = { a = 1 } }, "data.ids must be an array of notification ids" },
    { { ids = { true } }, "ids must be strings of 1..64 bytes or integers" },
    { { ids = { 1.5 } }, "ids must be strings of 1..64 bytes or integers" },
    { { ids = { "" } }, "ids must be strings of 1..64 bytes or integers" },
    { { ids = { string.rep("x", 65) } }, "ids must be strings of 1..64 bytes or integers" },
    { { ids = { { "nested" } } }, "ids must be strings of 1..64 bytes or integers" },
  }
  for _, case in ipairs(cases) do
    local err = c:request("notify:read", { data = case[1] })
    t.eq({ err.type, err.code, err.message }, { "error", "bad_message", case[2] })
  end
  local many = {}
  for i = 1, 101 do many[i] = "id" .. i end
  local err = c:request("notify:read", { data = { ids = many } })
  t.eq(err.message, "at most 100 ids at a time")
end)

t.test("the inbox keeps the newest 100: a push over the bound drops the oldest", function()
  local ids = {}
  for i = 1, 103 do ids[i] = mw.inbox.push("bound1", i) end
  local _, items = connected("bound1")
  t.eq(#items, 100)
  t.eq(items[1].id, ids[4])
  t.eq(items[1].data, 4)
  t.eq(items[100].id, ids[103])
end)

t.test("mw.inbox checks its arguments", function()
  local function raises(pattern, fn, ...)
    local ok, err = pcall(fn, ...)
    t.eq(ok, false)
    t.match(err, pattern)
  end
  raises("user must be a string of 1%.%.128 bytes", mw.inbox.push, "", 1)
  raises("user must be a string", mw.inbox.push, 42, 1)
  raises("user must not contain control characters", mw.inbox.list, "a\nb")
  raises("data must not be nil", mw.inbox.push, "argcheck")
  raises("over inbox.max_item %(4096%)", mw.inbox.push, "argcheck", string.rep("x", 5000))
  raises("cannot be encoded", mw.inbox.push, "argcheck", { f = print })
  raises("ids must be strings or integers", mw.inbox.read, "argcheck", { {} })
  t.eq(mw.inbox.list("argcheck"), {})
  t.eq(mw.inbox.read("argcheck", {}), {})
end)

t.test("subscribers of a topic get what is published to it; others do not", function()
  local sub = connected("topic1")
  local other = connected("topic2")
  local ack = sub:request("subscribe", { data = { topics = { "t-news", "t-sport", "t-news" } } })
  t.eq(ack.type, "ack")
  table.sort(ack.data.topics)
  t.eq(ack.data.topics, { "t-news", "t-sport" })
  t.ok(other:request("subscribe", { data = { topics = { "t-sport" } } }).type == "ack")
  mw.rooms.publish("t-news", { type = "article", room = "t-news", data = { title = "hi" } })
  local ev = sub:expect("article")
  t.eq(ev.room, "t-news")
  t.eq(ev.data, { title = "hi" })
  other:refute("article")
  -- No presence events on topic feeds.
  sub:refute("presence:join")

  ack = sub:request("unsubscribe", { data = { topics = { "t-news" } } })
  t.eq(ack.data.topics, { "t-sport" })
  mw.rooms.publish("t-news", { type = "article", room = "t-news", data = { title = "again" } })
  sub:refute("article")
end)

t.test("subscribe refuses bad topics and bounds topics per connection", function()
  local c = connected("topicbad")
  local cases = {
    { nil, "data.topics must be a non-empty array of topic names" },
    { { topics = "news" }, "data.topics must be a non-empty array of topic names" },
    { { topics = {} }, "data.topics must be a non-empty array of topic names" },
    { { topics = { 1 } }, "a topic must be a string of 1..128 bytes without control characters" },
    { { topics = { "" } }, "a topic must be a string of 1..128 bytes without control characters" },
    { { topics = { string.rep("x", 129) } },
      "a topic must be a string of 1..128 bytes without control characters" },
    { { topics = { "a\tb" } }, "a topic must be a string of 1..128 bytes without control characters" },
  }
  for _, case in ipairs(cases) do
    local err = c:request("subscribe", { data = case[1] })
    t.eq({ err.type, err.code, err.message }, { "error", "bad_message", case[2] })
    err = c:request("unsubscribe", { data = case[1] })
    t.eq(err.code, "bad_message")
  end
  local topics = {}
  for i = 1, 100 do topics[i] = "tb-" .. i end
  t.eq(c:request("subscribe", { data = { topics = topics } }).type, "ack")
  local err = c:request("subscribe", { data = { topics = { "tb-101" } } })
  t.eq(err.message, "at most 100 topics per connection")
  t.eq(c:request("subscribe", { data = { topics = { "tb-1" } } }).type, "ack",
    "a topic already followed does not count again")
  t.eq(#c:request("unsubscribe", { data = { topics = { "tb-1", "never" } } }).data.topics, 99)
end)
