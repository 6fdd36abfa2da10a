-- Tests of the reservations app (docs/protocol.md "The reservations app").
-- Run: moonwire test -c apps/reservations/tests/moonwire.yaml apps/reservations/tests
-- The tests share one server and its store: each uses venues of its own, and the
-- described venues (bistro, cafe, bar) only at slots or tables no other test uses.
local t = require "moonwire.test"
local mw = require "moonwire"
local json = mw.json

-- Connects user to path (default /reservations) and joins room: client, snapshot.
local function joined(user, room, path)
  local c = t.connect(path or "/reservations", user)
  local ack = c:request("join", { room = room })
  t.eq(ack.type, "ack", user .. " joins " .. room)
  return c, ack.data
end

-- Sends a hold: the reply (ack or error).
local function hold(c, room, tbl, slot, party)
  return c:request("reservation:hold", { room = room, data = { table = tbl, slot = slot, party = party } })
end

local function act(c, what, room, id)
  return c:request("reservation:" .. what, { room = room, data = { reservation = id } })
end

local function error_of(reply)
  t.eq(reply.type, "error", "an error reply: " .. t.show(reply))
  return reply.code, reply.message
end

t.test("join acks a snapshot: every described table, none taken yet", function()
  local _, snap = joined("ana", "venue:bistro")
  t.eq(snap.venue, "bistro")
  t.eq(snap.slots, { "18:00", "19:30", "21:00" })
  t.eq(#snap.tables, 3)
  t.eq(snap.tables[1], { table = "patio", seats = 6, slots = {} })
  t.eq(snap.tables[2].table, "t1")
  t.eq(snap.tables[3], { table = "t2", seats = 4, slots = {} })
  local _, open = joined("ana", "venue:empty-1")
  t.eq(open, { venue = "empty-1", tables = {} })
  t.ok(json.is_array(open.tables), "tables is a JSON array")
end)

t.test("join needs a venue room", function()
  local c = t.connect("/reservations", "ana")
  t.eq(error_of(c:request("join", {})), "bad_message")
  local code, message = error_of(c:request("join", { room = "lobby" }))
  t.eq(code, "bad_message")
  t.eq(message, "room must be venue:ID")
  t.eq(error_of(hold(c, "venue:v-join", "t", "s", 1)), "not_in_room")
end)

t.test("a hold wins the table: ack, reservation:created and table:status_changed", function()
  local ana = joined("ana", "venue:v-hold")
  local bob = joined("bob", "venue:v-hold")
  local before = mw.now()
  local ack = hold(ana, "venue:v-hold", "t1", "19:00", 2)
  t.eq(ack.type, "ack")
  local id = ack.data.reservation
  t.match(id, "^t1/19:00/%x+$")
  t.ok(ack.data.expires_at >= before + 60000, "expires after hold_ttl (default 2m)")
  for _, c in ipairs({ ana, bob }) do
    t.eq(c:expect("reservation:created"), { type = "reservation:created", room = "venue:v-hold",
      data = { reservation = id, table = "t1", slot = "19:00", party = 2, user = "ana",
               status = "held", expires_at = ack.data.expires_at } })
    t.eq(c:expect("table:status_changed").data, { table = "t1", slot = "19:00", status = "held" })
  end
  t.eq(error_of(hold(bob, "venue:v-hold", "t1", "19:00", 1)), "conflict")
  bob:refute("reservation:created")
  local _, snap = joined("eve", "venue:v-hold")
  t.eq(snap.tables, { { table = "t1", slots = { ["19:00"] = "held" } } })
end)

t.test("confirm and cancel: only the holder, each once", function()
  local room = "venue:v-confirm"
  local ana = joined("ana", room)
  local bob = joined("bob", room)
  local id = hold(ana, room, "t1", "20:00", 2).data.reservation
  t.eq(error_of(act(bob, "confirm", room, id)), "forbidden")
  t.eq(error_of(act(bob, "cancel", room, id)), "forbidden")
  local ack = act(ana, "confirm", room, id)
  t.eq(ack.data, { reservation = id, status = "confirmed" })
  t.eq(bob:expect("reservation:updated").data,
    { reservation = id, table = "t1", slot = "20:00", status = "confirmed" })
  t.eq(bob:expect({ type = "table:status_changed", data = { status = "reserved" } }).data,
    { table = "t1", slot = "20:00", status = "reserved" })
  local code, message = error_of(act(ana, "confirm", room, id))
  t.eq(code, "conflict")
  t.eq(message, "reservation " .. id .. " is confirmed")
  t.eq(error_of(hold(bob, room, "t1", "20:00", 1)), "conflict")
  -- A confirmed reservation can be cancelled by its holder: the table frees.
  t.eq(act(ana, "cancel", room, id).data, { reservation = id, status = "cancelled" })
  t.eq(bob:expect({ type = "reservation:updated", data = { status = "cancelled" } }).data.reservation, id)
  t.eq(bob:expect({ type = "table:status_changed", data = { status = "free" } }).data.slot, "20:00")
  t.eq(error_of(act(ana, "cancel", room, id)), "conflict")
  t.eq(error_of(act(ana, "confirm", room, id)), "conflict")
  -- The table is free again: a new hold gets a new id, and the old one names nothing.
  local again = hold(bob, room, "t1", "20:00", 1).data.reservation
  t.ok(again ~= id, "a new reservation id")
  t.eq(error_of(act(ana, "cancel", room, id)), "not_found")
end)

t.test("confirm and cancel of ids that name nothing", function()
  local room = "venue:v-unknown"
  local ana = joined("ana", room)
  t.eq(error_of(act(ana, "confirm", room, "t1/19:00/abc")), "not_found")
  t.eq(error_of(act(ana, "cancel", room, "nonsense")), "not_found")
  t.eq(error_of(act(ana, "confirm", room, "")), "not_found")
  t.eq(error_of(ana:request("reservation:confirm", { room = room, data = {} })), "bad_message")
  t.eq(error_of(ana:request("reservation:cancel", { room = room, data = { reservation = 7 } })), "bad_message")
  t.eq(error_of(ana:request("reservation:cancel", { room = room })), "bad_message")
  -- An id from another venue names nothing here.
  local other = joined("ana", "venue:v-unknown-2")
  local id = hold(other, "venue:v-unknown-2", "t1", "s", 1).data.reservation
  ana:request("join", { room = "venue:v-unknown" })
  t.eq(error_of(act(ana, "confirm", room, id)), "not_found")
end)

t.test("bad holds: each field checked, nothing held", function()
  local room = "venue:v-bad"
  local ana = joined("ana", room)
  local function bad(data, code)
    local reply = ana:request("reservation:hold", { room = room, data = data })
    t.eq(error_of(reply), code or "bad_message", t.show(data))
  end
  bad(nil)
  bad("t1")
  bad({ slot = "s", party = 1 })
  bad({ table = 7, slot = "s", party = 1 })
  bad({ table = "", slot = "s", party = 1 })
  bad({ table = string.rep("x", 65), slot = "s", party = 1 })
  bad({ table = "a\nb", slot = "s", party = 1 })
  bad({ table = "t", party = 1 })
  bad({ table = "t", slot = { "s" }, party = 1 })
  bad({ table = "t", slot = string.rep("s", 65), party = 1 })
  bad({ table = "t", slot = "s" })
  bad({ table = "t", slot = "s", party = "2" })
  bad({ table = "t", slot = "s", party = 0 })
  bad({ table = "t", slot = "s", party = 1.5 })
  bad({ table = "t", slot = "s", party = 1001 })
  local _, snap = joined("bob", room)
  t.eq(snap.tables, {}, "nothing held")
end)

t.test("a described venue: known tables, listed slots, seats", function()
  local room = "venue:bistro"
  local ana = joined("ana", room)
  local code, message = error_of(hold(ana, room, "t9", "18:00", 2))
  t.eq(code, "not_found")
  t.eq(message, "venue bistro has no table 't9'")
  code, message = error_of(hold(ana, room, "t1", "18:15", 2))
  t.eq(code, "not_found")
  t.eq(message, "venue bistro has no slot '18:15'")
  code, message = error_of(hold(ana, room, "t1", "18:00", 3))
  t.eq(code, "bad_message")
  t.eq(message, "party of 3 does not fit: at most 2")
  local ack = hold(ana, room, "patio", "21:00", 6)
  t.eq(ack.type, "ack")
  t.eq(act(ana, "cancel", room, ack.data.reservation).type, "ack")
end)

t.test("a venue with opening hours: times within them, with or without a date", function()
  local ana = joined("ana", "venue:cafe")
  for _, slot in ipairs({ "07:59", "16:00", "23:00", "8:00", "12:60", "noon", "2030-01-01T17:00" }) do
    t.eq(error_of(hold(ana, "venue:cafe", "a", slot, 1)), "not_found", slot)
  end
  for _, slot in ipairs({ "08:00", "15:59", "2030-01-01T12:30" }) do
    t.eq(hold(ana, "venue:cafe", "a", slot, 1).type, "ack", slot)
  end
  -- Hours past midnight.
  local bob = joined("bob", "venue:bar")
  for _, slot in ipairs({ "18:00", "23:30", "00:00", "01:59" }) do
    t.eq(hold(bob, "venue:bar", "b1", slot, 2).type, "ack", slot)
  end
  for _, slot in ipairs({ "02:00", "12:00", "17:59" }) do
    t.eq(error_of(hold(bob, "venue:bar", "b1", slot, 2)), "not_found", slot)
  end
end)

t.test("an undescribed venue takes any table and slot, / and % included", function()
  local room = "venue:v-any"
  local ana = joined("ana", room)
  local ack = hold(ana, room, "terrace/2 50%", "2030-05-01 19:00 / late", 4)
  t.eq(ack.type, "ack")
  local id = ack.data.reservation
  t.eq(ana:expect("reservation:created").data.table, "terrace/2 50%")
  t.eq(act(ana, "confirm", room, id).data.status, "confirmed")
  t.eq(error_of(hold(ana, room, "terrace/2 50%", "2030-05-01 19:00 / late", 1)), "conflict")
  local ack2 = hold(ana, room, "terrace", "2 50%/2030-05-01 19:00 / late", 1)
  t.eq(ack2.type, "ack", "a different place, though the same text joined by /")
  local _, snap = joined("bob", room)
  t.eq(snap.tables, {
    { table = "terrace", slots = { ["2 50%/2030-05-01 19:00 / late"] = "held" } },
    { table = "terrace/2 50%", slots = { ["2030-05-01 19:00 / late"] = "reserved" } },
  })
end)

t.test("reservation:mine lists the caller's holds and confirmed ones", function()
  local room = "venue:v-mine"
  local ana = joined("ana", room)
  local bob = joined("bob", room)
  local a1 = hold(ana, room, "t1", "19:00", 2).data.reservation
  local a2 = hold(ana, room, "t2", "18:00", 2).data.reservation
  local a3 = hold(ana, room, "t3", "18:00", 2).data.reservation
  hold(bob, room, "t4", "18:00", 2)
  act(ana, "confirm", room, a2)
  act(ana, "cancel", room, a3)
  local mine = ana:request("reservation:mine", { room = room }).data.reservations
  t.eq(#mine, 2)
  t.eq(mine[1].reservation, a2)
  t.eq(mine[1].status, "confirmed")
  t.eq(mine[2].reservation, a1)
  t.eq(mine[2].status, "held")
  t.eq(mine[2].party, 2)
  t.ok(mine[2].expires_at > mw.now(), "a hold says when it expires")
  local none = t.connect("/reservations", "carl")
  none:request("join", { room = room })
  local empty = none:request("reservation:mine", { room = room }).data.reservations
  t.eq(empty, {})
  t.ok(json.is_array(empty), "an empty JSON array")
end)

t.test("a hold expires after hold_ttl: announced once, the table frees", function()
  local room = "venue:v-expire"
  local ana = joined("ana", room, "/quick")
  local bob = joined("bob", room, "/quick")
  local ack = hold(ana, room, "t1", "19:00", 2)
  local id = ack.data.reservation
  t.ok(ack.data.expires_at <= mw.now() + 300, "hold_ttl 300ms")
  local ev = bob:expect("reservation:updated", 3)
  t.eq(ev.data, { reservation = id, table = "t1", slot = "19:00", status = "expired" })
  t.ok(mw.now() >= ack.data.expires_at, "not before its time")
  t.eq(bob:expect({ type = "table:status_changed", data = { status = "free" } }).data.table, "t1")
  bob:refute("reservation:updated", 0.6)
  local code, message = error_of(act(ana, "confirm", room, id))
  t.eq(code, "conflict")
  t.eq(message, "reservation " .. id .. " is expired")
  t.eq(hold(bob, room, "t1", "19:00", 1).type, "ack", "the table is free again")
end)

t.test("a hold confirmed in time does not expire", function()
  local room = "venue:v-in-time"
  local ana = joined("ana", room, "/quick")
  local id = hold(ana, room, "t1", "19:00", 2).data.reservation
  t.eq(act(ana, "confirm", room, id).type, "ack")
  ana:refute({ type = "reservation:updated", data = { status = "expired" } }, 0.8)
  local _, snap = joined("bob", room, "/quick")
  t.eq(snap.tables[1].slots, { ["19:00"] = "reserved" })
end)

t.test("whatever else a venue's hash holds is no reservation", function()
  local room = "venue:v-junk"
  mw.store.hset("resv:venue:v-junk", "t1/s", "not a reservation")
  mw.store.hset("resv:venue:v-junk", "t2/s", json.null)
  local ana, snap = joined("ana", room)
  t.eq(snap.tables, {})
  t.eq(error_of(act(ana, "confirm", room, "t2/s/x")), "not_found")
  t.eq(hold(ana, room, "t1", "s", 1).type, "ack", "overwrites what was there")
  t.eq(hold(ana, room, "t2", "s", 1).type, "ack")
end)

t.test("leave stops the events", function()
  local room = "venue:v-leave"
  local ana = joined("ana", room)
  local bob = joined("bob", room)
  t.eq(bob:request("leave", { room = room }).type, "ack")
  hold(ana, room, "t1", "s", 1)
  bob:refute("reservation:created")
  t.eq(error_of(hold(bob, room, "t2", "s", 1)), "not_in_room")
end)
