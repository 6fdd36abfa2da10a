-- Venue descriptions for the reservations app: read from the route's options at load
-- time (a bad one stops the server with the YAML line, like any config error), then
-- used to check every hold.
--
--   options:
--     venues:
--       bistro:                          # the room venue:bistro
--         tables: { t1: 2, t2: 4 }       # table id -> seats
--         slots: ["18:00", "19:30"]      # the bookable slots...
--       cafe:
--         tables: { a: 2 }
--         hours: { open: "08:00", close: "16:00" }  # ...or any HH:MM (or
--                                        # YYYY-MM-DDTHH:MM) within opening hours
--
-- A venue that is not described takes any table id and slot.
local mw = require "moonwire"
local json = mw.json

local M = {}

local MAX_PARTY = 1000 -- at an undescribed venue

-- Table ids, slots and venue ids: strings without control characters, 1..max bytes.
local function is_name(s, max)
  return type(s) == "string" and #s >= 1 and #s <= max and not s:find("%c")
end
M.is_name = is_name

local function is_map(v)
  return type(v) == "table" and not json.is_array(v)
end

-- "HH:MM" -> minutes since midnight, or nil.
local function minutes(hhmm)
  local h, m = tostring(hhmm):match("^(%d%d):(%d%d)$")
  h, m = tonumber(h), tonumber(m)
  if h and h < 24 and m < 60 then return h * 60 + m end
end

local function check_venue(id, v)
  local function bad(path, message)
    local full = { "venues", id }
    for _, k in ipairs(path) do full[#full + 1] = k end
    mw.config_error(full, message)
  end
  if not is_name(id, 122) then bad({}, "a venue id is 1..122 bytes without control characters") end
  if not is_map(v) then bad({}, "must be a map: { tables, slots or hours }") end
  for key in pairs(v) do
    if key ~= "tables" and key ~= "slots" and key ~= "hours" then
      bad({ key }, "unknown key (a venue has tables, and slots or hours)")
    end
  end
  if not is_map(v.tables) or next(v.tables) == nil then
    bad({ "tables" }, "tables is required: a map of table id -> seats")
  end
  for t, seats in pairs(v.tables) do
    if not is_name(t, 64) then bad({ "tables", t }, "a table id is 1..64 bytes without control characters") end
    if type(seats) ~= "number" or seats % 1 ~= 0 or seats < 1 or seats > MAX_PARTY then
      bad({ "tables", t }, "seats must be an integer of 1.." .. MAX_PARTY)
    end
  end
  if v.slots ~= nil and v.hours ~= nil then bad({ "hours" }, "give slots or hours, not both") end
  if v.slots ~= nil then
    if not json.is_array(v.slots) or #v.slots == 0 then bad({ "slots" }, "slots must be a list of slot names") end
    local seen = {}
    for i, s in ipairs(v.slots) do
      if not is_name(s, 64) then bad({ "slots", i }, "a slot is 1..64 bytes without control characters") end
      if seen[s] then bad({ "slots", i }, "slot '" .. s .. "' is listed twice") end
      seen[s] = true
    end
    v.listed = seen
  end
  if v.hours ~= nil then
    local h = v.hours
    if not is_map(h) then bad({ "hours" }, "hours must be { open: HH:MM, close: HH:MM }") end
    for key in pairs(h) do
      if key ~= "open" and key ~= "close" then bad({ "hours", key }, "unknown key (hours has open and close)") end
    end
    v.open, v.close = minutes(h.open), minutes(h.close)
    if not v.open then bad({ "hours", "open" }, "open must be a time HH:MM") end
    if not v.close then bad({ "hours", "close" }, "close must be a time HH:MM") end
    if v.open == v.close then bad({ "hours" }, "open and close must differ") end
  end
end

-- The described venues of the route's options (id -> description); raises a config
-- error for anything it does not understand.
function M.load(options)
  for key in pairs(options) do
    if key ~= "venues" then mw.config_error({ key }, "unknown option (this app has: venues)") end
  end
  local venues = options.venues or {}
  if not is_map(venues) then mw.config_error({ "venues" }, "venues must be a map of venue id -> description") end
  for id, v in pairs(venues) do check_venue(id, v) end
  return venues
end

-- Whether a slot is within opening hours: HH:MM, or a date and HH:MM. Hours that close
-- before they open run past midnight.
local function in_hours(v, slot)
  local t = minutes(slot) or minutes(slot:match("^%d%d%d%d%-%d%d%-%d%dT(%d%d:%d%d)$"))
  if not t then return false end
  if v.open < v.close then return t >= v.open and t < v.close end
  return t >= v.open or t < v.close
end

-- Checks a hold's data against the venue's description (nil: undescribed), failing
-- the request as the protocol says; returns table, slot, party.
function M.check_hold(venue, v, d)
  if not is_map(d) then mw.fail("bad_message", "data must be {table, slot, party}") end
  local t, slot, party = d.table, d.slot, d.party
  if not is_name(t, 64) then mw.fail("bad_message", "table must be a string of 1..64 bytes") end
  if not is_name(slot, 64) then mw.fail("bad_message", "slot must be a string of 1..64 bytes") end
  if type(party) ~= "number" or party % 1 ~= 0 or party < 1 then
    mw.fail("bad_message", "party must be a positive integer")
  end
  local seats = v and v.tables[t]
  if v and not seats then mw.fail("not_found", "venue " .. venue .. " has no table '" .. t .. "'") end
  if party > (seats or MAX_PARTY) then
    mw.fail("bad_message", "party of " .. party .. " does not fit: at most " .. (seats or MAX_PARTY))
  end
  if v and v.listed and not v.listed[slot] then
    mw.fail("not_found", "venue " .. venue .. " has no slot '" .. slot .. "'")
  end
  if v and v.open and not in_hours(v, slot) then
    mw.fail("not_found", "venue " .. venue .. " is not open at '" .. slot .. "' (hours " ..
      v.hours.open .. "-" .. v.hours.close .. ")")
  end
  return t, slot, party
end

return M
