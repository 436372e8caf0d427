-- tools/dev soak: monitoring's polls, /status and /metrics alternately, at a steady pace.
local paths = {"/status", "/metrics"}
local i = 0
function delay()
  return tonumber(os.getenv("DELAY_MS") or "50")
end
function request()
  i = i + 1
  return wrk.format("GET", paths[(i % 2) + 1])
end
