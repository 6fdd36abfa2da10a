-- errors.lua - failures a handler raises on purpose (mw.fail) as opposed to bugs.
local M = {}

local Failure = {}
Failure.__index = Failure
Failure.__tostring = function(f) return f.code .. ": " .. f.message end
M.Failure = Failure

-- The error codes of the wire protocol (docs/protocol.md, "Error codes").
M.codes = {
  bad_json = true, bad_message = true, unknown_type = true, not_in_room = true,
  forbidden = true, unauthorized = true, rate_limited = true, conflict = true,
  not_found = true, unavailable = true, internal = true,
}

-- Raises a failure: the client gets {"type":"error","code":code,"message":message}.
function M.fail(code, message)
  if not M.codes[code] then
    error("mw.fail: unknown error code '" .. tostring(code) .. "'", 2)
  end
  error(setmetatable({ code = code, message = message or code }, Failure), 0)
end

function M.is_failure(e)
  return getmetatable(e) == Failure
end

return M
