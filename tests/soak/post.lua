-- tools/dev soak: posts at a steady pace. Each connection waits `delay` ms between requests;
-- every post is a legal first step for its own (employee, item) pair, so every answer is 201.
local threads = {}
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end
function init(args)
  n = 0
  token = os.getenv("TOKEN")
  employees = tonumber(os.getenv("EMPLOYEES") or "80000")
  window = tonumber(os.getenv("WINDOW") or "0")
  pause = tonumber(os.getenv("DELAY_MS") or "10")
end
local items = {"mobile_device", "hessen_smartphone", "hessen_voice", "wlan_autologin"}
function delay()
  return pause
end
function request()
  n = n + 1
  -- each window and thread gets its own block of 15,000 (employee, item) pairs, each posted
  -- once as "planned" (a legal first step); the soak sizes windows so blocks never overlap
  local pair = (window * 2 + id) * 15000 + n
  local emp = string.format("S%07d", (pair % employees) + 1)
  local item = items[math.floor(pair / employees) % 4 + 1]
  local body = string.format('{"event_id":"%08x-%04x-4000-8000-%012x","employee":"%s","item":"%s","state":"planned","occurred_at":"2026-11-20T09:30:00+01:00"}',
    window, id, n, emp, item)
  return wrk.format("POST", "/v1/events", {["Content-Type"]="application/json", ["Authorization"]="Bearer " .. token}, body)
end
response = function(status, headers, body)
  if status ~= 201 then
    io.stderr:write("unexpected " .. status .. ": " .. body .. "\n")
  end
end
