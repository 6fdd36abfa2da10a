-- The echo app: a raw route (`protocol: raw`) that sends every frame back unchanged,
-- text as text and binary as binary. For conformance tests and client debugging.
local mw = require "moonwire"

local app = mw.app()

function app.message(conn, payload, is_binary)
  conn:send(payload, is_binary)
end

return app
