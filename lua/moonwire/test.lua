-- moonwire.test - tests for apps, run by `moonwire test` (docs/testing.md).
--
--   local t = require "moonwire.test"
--   t.test("join acks the members", function()
--     local ana = t.connect("/chat", "ana")
--     local ack = ana:request("join", { room = "r1", data = { name = "Ana" } })
--     t.eq(ack.data.members, { { user = "ana", name = "Ana", conns = 1 } })
--   end)
--
-- A test file registers tests; the runner then calls run_all() in a coroutine, so a
-- test may wait (next, expect, sleep) while the server under test keeps running.
local testing = require "moonwire.testing"
local json = require "moonwire.json"
local core = require "moonwire.core"

local type, pairs, ipairs, tostring, getmetatable, setmetatable =
  type, pairs, ipairs, tostring, getmetatable, setmetatable
local error, pcall, xpcall = error, pcall, xpcall
local format, concat, sort, remove = string.format, table.concat, table.sort, table.remove
local getinfo = debug.getinfo
local null = json.null

local M = {
  timeout = 1,   -- seconds expect/request wait by default
  json = json,
}

local tests = {}  -- { name, fn, source }
local current     -- the running test: { source, clients }
local THIS = getinfo(1, "S").source

-- ---- failures ----

-- An assertion's failure, told apart from a Lua error by its metatable.
local Failure = {}
Failure.__tostring = function(f) return f.text end

local function file_of(info)
  local s = info.source
  return s:sub(1, 1) == "@" and s:sub(2) or info.short_src
end

-- "file:line" of the innermost frame in the running test's file, else of the innermost
-- Lua frame outside this module.
local function where()
  local fallback
  for level = 2, 200 do
    local info = getinfo(level, "Sl")
    if not info then break end
    if info.currentline and info.currentline > 0 and info.source ~= THIS then
      local here = file_of(info) .. ":" .. info.currentline
      if current and info.source == current.source then return here end
      fallback = fallback or here
    end
  end
  return fallback or "?"
end

local function fail(msg)
  error(setmetatable({ text = where() .. ": " .. msg }, Failure), 0)
end

-- ---- showing values ----

local function is_list(t)
  if json.is_array(t) then return true end
  local n = #t
  if n == 0 then return false end
  local count = 0
  for _ in pairs(t) do count = count + 1 end
  return count == n
end

local function key_order(a, b)
  local ta, tb = type(a), type(b)
  if ta ~= tb then return ta < tb end
  if ta == "string" or ta == "number" then return a < b end
  return tostring(a) < tostring(b)
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  sort(keys, key_order)
  return keys
end

-- JSON-like text of a value, object keys sorted, for failure messages.
local function show(v, seen)
  if v == null then return "null" end
  local tv = type(v)
  if tv == "string" then return json.encode(v) end
  if tv ~= "table" then return tostring(v) end
  seen = seen or {}
  if seen[v] then return "<cycle>" end
  seen[v] = true
  local parts = {}
  local text
  if is_list(v) then
    for i = 1, #v do parts[i] = show(v[i], seen) end
    text = "[" .. concat(parts, ",") .. "]"
  else
    for _, k in ipairs(sorted_keys(v)) do
      local key = type(k) == "string" and json.encode(k) or "[" .. tostring(k) .. "]"
      parts[#parts + 1] = key .. ":" .. show(v[k], seen)
    end
    text = "{" .. concat(parts, ",") .. "}"
  end
  seen[v] = nil
  return text
end
M.show = function(v) return show(v) end

local function key_path(k)
  if type(k) == "string" and k:find("^[%a_][%w_]*$") then return "." .. k end
  return "[" .. show(k) .. "]"
end

-- nil when a and b are deeply equal (metatables ignored), else the path of the first
-- difference and the two values there.
local function diff(a, b, path)
  if a == b then return nil end
  if type(a) ~= "table" or type(b) ~= "table" then return path, a, b end
  for _, k in ipairs(sorted_keys(b)) do
    local p, x, y = diff(a[k], b[k], path .. key_path(k))
    if p then return p, x, y end
  end
  for _, k in ipairs(sorted_keys(a)) do
    if b[k] == nil then return path .. key_path(k), a[k], nil end
  end
  return nil
end

-- ---- assertions ----

-- t.eq(actual, expected [, msg]): deep equality; returns actual.
function M.eq(actual, expected, msg)
  local path, x, y = diff(actual, expected, "")
  if not path then return actual end
  local lines = { (msg and msg .. ": " or "") .. "values differ" }
  if path ~= "" then
    lines[#lines + 1] = format("at %s: expected %s, got %s", path, show(y), show(x))
  end
  lines[#lines + 1] = "expected: " .. show(expected)
  lines[#lines + 1] = "  actual: " .. show(actual)
  fail(concat(lines, "\n"))
end

-- t.ok(v [, msg]): v is neither nil nor false; returns v.
function M.ok(v, msg)
  if not v then fail(msg or ("expected a true value, got " .. show(v))) end
  return v
end

-- t.match(str, pattern [, msg]): str is a string matching the Lua pattern.
function M.match(str, pattern, msg)
  if type(str) ~= "string" or not str:find(pattern) then
    fail((msg and msg .. ": " or "") .. format("%s does not match %s", show(str), show(pattern)))
  end
  return str
end

-- t.fail(msg): fails the test here.
function M.fail(msg)
  fail(msg == nil and "failed" or tostring(msg))
end

local function check_running()
  if not testing.running() then error("this test file has ended (it timed out)", 0) end
end

-- t.sleep(seconds): waits without blocking the server (mw.sleep).
function M.sleep(seconds)
  core.sleep(seconds)
  check_running()
end

-- ---- clients ----

local Client = {}
local client_mt = {
  __index = function(self, k)
    local m = Client[k]
    if m ~= nil then return m end
    if k == "closed" or k == "close_code" or k == "close_reason" then return self.raw[k] end
  end,
  __tostring = function(self) return tostring(self.raw) end,
}

local function now()
  return core.now() / 1000
end

local function name(c)
  return format("%s (conn %s)", c.user, c.id)
end

-- From the wire: msg [, is_binary] | nil, "timeout" | nil, "closed", code, reason.
local function receive(c, timeout)
  local m, x, code, reason = c.raw:next(timeout)
  if m == nil and x == "abandoned" then check_running() end
  return m, x, code, reason
end

-- Whether v has every field of pattern (recursively); other values: deep equality.
local function like(pattern, v)
  if type(pattern) ~= "table" then return diff(v, pattern, "") == nil end
  if type(v) ~= "table" then return false end
  for k, pv in pairs(pattern) do
    if not like(pv, v[k]) then return false end
  end
  return true
end

-- A message type, a table pattern or a predicate -> match function and its description.
local function matcher(what)
  local tw = type(what)
  if tw == "string" then
    return function(m) return type(m) == "table" and m.type == what end, format("a '%s' message", what)
  elseif tw == "table" then
    return function(m) return like(what, m) end, "a message like " .. show(what)
  elseif tw == "function" then
    return what, "a message matching the predicate"
  end
  error("want a message type, a table pattern or a predicate function", 3)
end

local function describe(held)
  if #held == 0 then return "nothing" end
  local lines = { #held == 1 and "1 message:" or #held .. " messages:" }
  for _, h in ipairs(held) do lines[#lines + 1] = "  " .. show(h[1]) end
  return concat(lines, "\n")
end

-- The first message (held or arriving within timeout) that match accepts; the others
-- are held for later calls. Fails the test when none comes.
local function await(c, match, label, timeout)
  local held = c.held
  for i, h in ipairs(held) do
    if match(h[1], h[2]) then
      remove(held, i)
      return h[1], h[2]
    end
  end
  timeout = timeout or M.timeout
  local deadline = now() + timeout
  while true do
    local left = deadline - now()
    if left <= 0 then break end
    local m, x, code, reason = receive(c, left)
    if m == nil then
      if x == "closed" then
        fail(format("%s expected %s, but the connection closed (%s %s); received %s",
          name(c), label, tostring(code), show(reason), describe(held)))
      end
      break
    end
    if match(m, x) then return m, x end
    held[#held + 1] = { m, x }
  end
  fail(format("%s expected %s within %g s; received %s", name(c), label, timeout, describe(held)))
end

-- client:send(msg [, binary]) -> true | nil, "closed". A table goes as JSON.
function Client:send(msg, binary)
  return self.raw:send(msg, binary)
end

-- client:next([timeout]) -> the next message not consumed yet (decoded JSON; on raw
-- routes the payload and whether it is binary), or nil, "timeout" | nil, "closed",
-- code, reason.
function Client:next(timeout)
  local h = remove(self.held, 1)
  if h then return h[1], h[2] end
  return receive(self, timeout or M.timeout)
end

-- client:expect(type | pattern | predicate [, timeout]) -> the first matching message.
function Client:expect(what, timeout)
  local match, label = matcher(what)
  return await(self, match, label, timeout)
end

-- client:refute(type | pattern | predicate [, seconds]): nothing matching arrives
-- within seconds (default 0.1) and nothing matching is held.
function Client:refute(what, seconds)
  local match, label = matcher(what)
  for _, h in ipairs(self.held) do
    if match(h[1], h[2]) then fail(format("%s got %s: %s", name(self), label, show(h[1]))) end
  end
  local deadline = now() + (seconds or 0.1)
  while true do
    local left = deadline - now()
    if left <= 0 then return end
    local m, x = receive(self, left)
    if m == nil then return end -- timeout, or closed: nothing more comes
    if match(m, x) then fail(format("%s got %s: %s", name(self), label, show(m))) end
    self.held[#self.held + 1] = { m, x }
  end
end

-- client:request(type [, { room =, data =, id =, timeout = }]) -> the ack or error
-- message answering it. The id defaults to the client's next integer (1, 2, ...).
function Client:request(type_, opts)
  opts = opts or {}
  local id = opts.id
  if id == nil then
    self.last_id = self.last_id + 1
    id = self.last_id
  end
  local ok, err = self.raw:send({ type = type_, room = opts.room, data = opts.data, id = id })
  if not ok then fail(format("%s cannot send '%s': %s", name(self), type_, tostring(err))) end
  local function reply(m)
    return type(m) == "table" and (m.type == "ack" or m.type == "error") and m.id == id
  end
  return await(self, reply, format("the reply to '%s' (id %s)", type_, show(id)), opts.timeout)
end

-- client:expect_close([timeout]) -> code, reason: the server closes the connection.
function Client:expect_close(timeout)
  timeout = timeout or M.timeout
  local deadline = now() + timeout
  while true do
    local left = deadline - now()
    if left <= 0 then break end
    local m, x, code, reason = receive(self, left)
    if m == nil and x == "closed" then return code, reason end
    if m == nil then break end
    self.held[#self.held + 1] = { m, x }
  end
  fail(format("%s expected the connection to close within %g s", name(self), timeout))
end

-- client:close(): the client disconnects (the app's disconnect handler runs at once).
function Client:close()
  return self.raw:close()
end

-- t.connect(path [, user]) -> client, connected to the route at path as user
-- (anonymous without one); client.hello is the hello's data. Closed after the test.
function M.connect(path, user)
  if not current then error("t.connect: only inside a test", 2) end
  local ok, raw = pcall(testing.connect, path, user)
  if not ok then fail(tostring(raw)) end
  local c = setmetatable({ raw = raw, id = raw.id, user = raw.user, held = {}, last_id = 0 },
    client_mt)
  current.clients[#current.clients + 1] = c
  local first, x = raw:next(0)
  if type(first) == "table" and first.type == "hello" then
    c.hello = first.data
  elseif first ~= nil then
    c.held[1] = { first, x }
  end
  return c
end

-- ---- running ----

-- t.test(name, fn): registers a test.
function M.test(name_, fn)
  if type(name_) ~= "string" then error("t.test(name, fn): name must be a string", 2) end
  if type(fn) ~= "function" then error("t.test(name, fn): fn must be a function", 2) end
  tests[#tests + 1] = { name = name_, fn = fn, source = getinfo(fn, "S").source }
end

local function out(line)
  io.stdout:write(line, "\n")
  io.stdout:flush()
end

local function diag(text)
  for line in (text .. "\n"):gmatch("(.-)\n") do out("#   " .. line) end
end

-- A failure's text: assertions carry theirs; a Lua error gets the test file's line
-- in front when its message names another place (or none).
local function on_error(e)
  if getmetatable(e) == Failure then return e.text end
  local msg = tostring(e)
  local here = where()
  if msg:sub(1, #here) ~= here then msg = here .. ": " .. msg end
  return msg
end

local function run_one(tc)
  current = { source = tc.source, clients = {} }
  testing.begin(tc.name)
  local ok, err = xpcall(tc.fn, on_error)
  for _, c in ipairs(current.clients) do c.raw:close() end
  current = nil
  return ok, err
end

-- Runs every registered test in order, printing "ok N - name" or "not ok N - name"
-- and the failure; then tells the runner it finished.
function M.run_all()
  local ok, err = xpcall(function()
    if #tests == 0 then out("#   no tests in this file") end
    for _, tc in ipairs(tests) do
      if not testing.running() then return end
      local passed, why = run_one(tc)
      local n = testing.result(passed)
      if not n then return end -- the file timed out meanwhile
      out(format("%s %d - %s", passed and "ok" or "not ok", n, tc.name))
      if not passed then diag(why) end
    end
  end, debug.traceback)
  if not ok then -- a bug here, not in a test: it still counts
    local n = testing.result(false)
    if n then
      out(format("not ok %d - moonwire.test", n))
      diag(tostring(err))
    end
  end
  testing.done()
end

return M
