-- The reservations app (docs/protocol.md "The reservations app"): a venue booking
-- board. A client joins the room venue:ID, holds a table for a slot, and confirms or
-- cancels the hold before it expires (the route's hold_ttl, 2 minutes by default).
-- Everyone in the room sees every change as it happens.
--
-- The state lives in mw.store, so with Redis every node shares it:
--   resv:venue:ID   a hash: "table/slot" -> the reservation there, { reservation,
--                   table, slot, party, user, status, expires_at }, where status is
--                   held, confirmed, or what ended it: cancelled or expired
--   resv:expiry     a timed queue of { room, reservation }, due when a hold expires
--
-- Every change reads a reservation (hgets) and writes it back only if nobody changed it
-- meanwhile (hcas): of racing holds, confirms and expiries exactly one wins, on any
-- node. A reservation's id names its place ("t4/19:00/18f2a3c9e1b7") so that confirm
-- and cancel find it with one read.
local mw = require "moonwire"
local venues = require "venues"
local store, json = mw.store, mw.json

local app = mw.app()

local route = mw.route()
local HOLD_TTL = route.hold_ttl_ms / 1000 -- seconds
local DESCRIBED = venues.load(route.options)
local EXPIRY = "resv:expiry"
local POLL = 0.25  -- seconds between looks at the expiry queue, on every node
local LEASE = 10   -- an expiry whose taker died comes back after this long
local TABLE_STATUS = { held = "held", confirmed = "reserved" } -- else "free"

math.randomseed(mw.now())

local function venue_of(room)
  local venue = room:match("^venue:(.+)$")
  if not venue then mw.fail("bad_message", "room must be venue:ID") end
  return venue
end

local function key_of(venue)
  return "resv:venue:" .. venue
end

-- "table/slot", with % and / in either escaped so that the split is unambiguous.
local function escape(s)
  return (s:gsub("[%%/]", function(c) return ("%%%02X"):format(c:byte()) end))
end

local function place_of(t, slot)
  return escape(t) .. "/" .. escape(slot)
end

-- What a reservation makes of its table: "held", "reserved", or nil once it ended (or
-- for whatever else a venue's hash may hold).
local function taken(r)
  return type(r) == "table" and TABLE_STATUS[r.status] or nil
end

local function unavailable(err)
  mw.fail("unavailable", "reservations are unavailable (" .. tostring(err) .. "), try again")
end

-- The reservation at a place and its token for hcas (nil when the place was never
-- taken).
local function read(key, place)
  local r, token = store.hgets(key, place)
  if r == nil and token ~= nil then unavailable(token) end
  return r, token
end

-- Tells the room about a reservation's new status.
local function announce(room, r)
  local event = r.status == "held" and "reservation:created" or "reservation:updated"
  local data = { reservation = r.reservation, table = r.table, slot = r.slot, status = r.status }
  if r.status == "held" then
    data.party, data.user, data.expires_at = r.party, r.user, r.expires_at
  end
  mw.rooms.broadcast(room, { type = event, room = room, data = data })
  mw.rooms.broadcast(room, { type = "table:status_changed", room = room,
    data = { table = r.table, slot = r.slot, status = taken(r) or "free" } })
end

-- Every table that is held or reserved at some slot, and every described table:
-- { venue, tables = [{ table, seats?, slots = { [slot] = "held" | "reserved" } }],
-- slots? | hours? }.
local function snapshot(venue)
  local all, err = store.hgetall(key_of(venue))
  if not all then unavailable(err) end
  local described = DESCRIBED[venue]
  local by_id, tables = {}, json.array()
  local function entry(t)
    if not by_id[t] then
      by_id[t] = { table = t, seats = described and described.tables[t], slots = {} }
      tables[#tables + 1] = by_id[t]
    end
    return by_id[t]
  end
  for t in pairs(described and described.tables or {}) do entry(t) end
  for _, r in pairs(all) do
    if taken(r) then entry(r.table).slots[r.slot] = taken(r) end
  end
  table.sort(tables, function(a, b) return a.table < b.table end)
  return { venue = venue, tables = tables, slots = described and described.slots,
           hours = described and described.hours }
end

app:on("join", function(conn, msg)
  local room = msg.room or mw.fail("bad_message", "room is required")
  local venue = venue_of(room)
  conn:join(room) -- first: a change made while the snapshot is read arrives as an event
  return snapshot(venue)
end)

app:on("leave", function(conn, msg)
  conn:leave(mw.member_room(conn, msg))
end)

app:on("reservation:hold", function(conn, msg)
  local room = mw.member_room(conn, msg)
  local venue = venue_of(room)
  local t, slot, party = venues.check_hold(venue, DESCRIBED[venue], msg.data)
  local key, place = key_of(venue), place_of(t, slot)
  local current, token = read(key, place)
  if taken(current) then mw.fail("conflict", "table " .. t .. " is " .. taken(current) .. " at " .. slot) end
  local r = {
    reservation = ("%s/%x%04x"):format(place, mw.now(), math.random(0, 0xffff)),
    table = t, slot = slot, party = party, user = conn.user, status = "held",
    expires_at = mw.now() + HOLD_TTL * 1000,
  }
  -- The expiry goes first: a hold written without one would never end. A hold that
  -- is not written takes its expiry back (one left behind would find nothing to do).
  local expiry = json.array({ room, r.reservation })
  local ok, err = store.schedule(EXPIRY, expiry, HOLD_TTL)
  if not ok then unavailable(err) end
  ok, err = store.hcas(key, place, token, r)
  if not ok then
    store.unschedule(EXPIRY, expiry)
    if err == "changed" then mw.fail("conflict", "table " .. t .. " was just taken at " .. slot) end
    unavailable(err)
  end
  announce(room, r)
  return { reservation = r.reservation, expires_at = r.expires_at }
end)

-- The caller's reservation named by msg.data.reservation, and where it is: { room, key,
-- place, token }. Fails not_found for an id that names nothing (any more), forbidden
-- for someone else's.
local function own(conn, msg)
  local room = mw.member_room(conn, msg)
  local id = type(msg.data) == "table" and msg.data.reservation
  if type(id) ~= "string" then mw.fail("bad_message", "data.reservation must be a reservation id") end
  local place = id:match("^(.+)/[^/]+$")
  local key = key_of(venue_of(room))
  local r, token
  if place then r, token = read(key, place) end
  if type(r) ~= "table" or r.reservation ~= id then mw.fail("not_found", "no reservation " .. id .. " here") end
  if r.user ~= conn.user then mw.fail("forbidden", "reservation " .. id .. " is not yours") end
  return r, { room = room, key = key, place = place, token = token }
end

-- Writes r back with its new status, unless someone changed it since it was read
-- (then conflict), and tells the room.
local function settle(at, r, status)
  r.status, r.expires_at = status, nil
  local ok, err = store.hcas(at.key, at.place, at.token, r)
  if not ok and err == "changed" then
    mw.fail("conflict", "reservation " .. r.reservation .. " changed meanwhile")
  end
  if not ok then unavailable(err) end
  announce(at.room, r)
  return { reservation = r.reservation, status = status }
end

app:on("reservation:confirm", function(conn, msg)
  local r, at = own(conn, msg)
  if r.status ~= "held" then mw.fail("conflict", "reservation " .. r.reservation .. " is " .. r.status) end
  if mw.now() >= r.expires_at then mw.fail("conflict", "the hold has expired") end
  return settle(at, r, "confirmed")
end)

app:on("reservation:cancel", function(conn, msg)
  local r, at = own(conn, msg)
  if not taken(r) then mw.fail("conflict", "reservation " .. r.reservation .. " is " .. r.status) end
  return settle(at, r, "cancelled")
end)

-- The caller's holds and confirmed reservations in the venue, by slot and table.
app:on("reservation:mine", function(conn, msg)
  local room = mw.member_room(conn, msg)
  local all, err = store.hgetall(key_of(venue_of(room)))
  if not all then unavailable(err) end
  local mine = json.array()
  for _, r in pairs(all) do
    if taken(r) and r.user == conn.user then mine[#mine + 1] = r end
  end
  table.sort(mine, function(a, b) return a.slot .. "/" .. a.table < b.slot .. "/" .. b.table end)
  return { reservations = mine }
end)

-- GET /api/venues/{venue} (with an API key): the snapshot a join acks with.
app:api("venue", function(args)
  if not venues.is_name(args.venue, 122) then
    mw.fail("bad_message", "a venue id is 1..122 bytes without control characters")
  end
  return snapshot(args.venue)
end)

-- Expiry. Every node polls the queue; each due hold goes to one of them, which turns it
-- into "expired" unless a confirm or cancel got there first. The queue holds it again
-- after LEASE, so a node that dies on it leaves it to another; only after the change
-- is decided is it taken out for good.
local function expire(item)
  local room, id = item[1], item[2]
  local venue, place = room:match("^venue:(.+)$"), id:match("^(.+)/[^/]+$")
  local key = key_of(venue)
  local r, token = store.hgets(key, place)
  if r == nil and token ~= nil then return end -- unavailable: it comes back
  if type(r) == "table" and r.reservation == id and r.status == "held" then
    r.status, r.expires_at = "expired", nil
    local ok, err = store.hcas(key, place, token, r)
    if not ok and err ~= "changed" then return end
    if ok then announce(room, r) end
  end
  store.unschedule(EXPIRY, item)
end

mw.every(POLL, function()
  for _, item in ipairs(store.due(EXPIRY, 100, LEASE) or {}) do
    local ok, err = pcall(expire, item)
    if not ok then mw.log.error("reservation expiry failed", { item = item, err = err }) end
  end
end)

return app
