-- The notify app (docs/protocol.md, "The notify app"): a user's notification inbox and topic feeds.
--
-- On connect the user's unread notifications arrive as one `notify:backlog` (always,
-- with an empty list when there are none). New ones arrive live as `notify` from
-- `POST /api/notify` or `mw.inbox.push`, on every device of the user, and stay unread
-- until a device sends `notify:read`; then every device gets `notify:read` too.
-- `subscribe` / `unsubscribe` follow topic feeds: a topic is a room that server-side
-- publishers (`POST /api/publish`, `mw.rooms.publish`) send to; no presence events
-- (the route defaults to `presence: { events: false }`).
local mw = require "moonwire"
local json = mw.json

local app = mw.app()

-- Route options: `options: { max_topics: N }` (per connection, default 100).
local MAX_TOPICS = tonumber(mw.route().options.max_topics) or 100
local MAX_IDS = 100 -- ids per notify:read (the inbox's own bound)

local function bad(message) mw.fail("bad_message", message) end

function app.connect(conn)
  local items, err = mw.inbox.list(conn.user)
  if not items then
    -- No backlog rather than a wrong (empty) one: the client retries by reconnecting.
    conn:send({ type = "error", code = "unavailable", message = "inbox unavailable: " .. err })
    return
  end
  conn:send({ type = "notify:backlog", data = { items = items } })
end

app:on("notify:read", function(conn, msg)
  local d = msg.data
  local ids = type(d) == "table" and d.ids
  if not json.is_array(ids) then bad("data.ids must be an array of notification ids") end
  if #ids > MAX_IDS then bad("at most " .. MAX_IDS .. " ids at a time") end
  for _, id in ipairs(ids) do
    local t = type(id)
    if not ((t == "string" and #id >= 1 and #id <= 64) or
            (t == "number" and id == math.floor(id) and math.abs(id) < 2^53)) then
      bad("ids must be strings of 1..64 bytes or integers")
    end
  end
  local gone, err = mw.inbox.read(conn.user, ids)
  if not gone then mw.fail("unavailable", "inbox unavailable: " .. err) end
  return { ids = gone }
end)

-- The topics of a subscribe/unsubscribe message, checked like room names and
-- without duplicates.
local function topics_of(msg)
  local d = msg.data
  local topics = type(d) == "table" and d.topics
  if not json.is_array(topics) or #topics == 0 then
    bad("data.topics must be a non-empty array of topic names")
  end
  if #topics > MAX_TOPICS then bad("at most " .. MAX_TOPICS .. " topics at a time") end
  local seen, out = {}, {}
  for _, t in ipairs(topics) do
    if type(t) ~= "string" or #t < 1 or #t > 128 or t:find("%c") then
      bad("a topic must be a string of 1..128 bytes without control characters")
    end
    if not seen[t] then
      seen[t] = true
      out[#out + 1] = t
    end
  end
  return out
end

app:on("subscribe", function(conn, msg)
  local topics = topics_of(msg)
  local new = 0
  for _, t in ipairs(topics) do
    if not conn:in_room(t) then new = new + 1 end
  end
  if #conn:rooms() + new > MAX_TOPICS then
    bad("at most " .. MAX_TOPICS .. " topics per connection")
  end
  for _, t in ipairs(topics) do conn:join(t) end
  return { topics = conn:rooms() }
end)

app:on("unsubscribe", function(conn, msg)
  for _, t in ipairs(topics_of(msg)) do conn:leave(t) end
  return { topics = conn:rooms() }
end)

return app
