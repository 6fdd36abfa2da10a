-- errors.lua - failures a handler raises on purpose (mw.fail) as opposed to bugs.
local core = require "moonwire.core"

local M = {}

local Failure = {}
Failure.__index = Failure
Failure.__tostring = function(f) return f.code .. ": " .. f.message end
M.Failure = Failure

-- The error codes of the wire protocol (docs/protocol.md, "Error codes"), as a set:
-- { bad_json = true, ... }. The list is kept once, in C (lua_core.c), for the metrics.
M.codes = core.error_codes()

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
