-- bench/lua/events.lua: POST /v1/events for wrk, every event a legal transition.
--
-- Environment (set by bench/run):
--   BENCH_TOKEN    the bearer token
--   BENCH_NONCE    8 hex digits, new for every run: the first group of every event_id
--   BENCH_AT       occurred_at of every event in this run (RFC 3339, a second in the past)
--   BENCH_BATCH    0: one event (an object) per request; N: an array of N events per request
--   BENCH_THREADS  wrk's -t
--   BENCH_STATES   a file of 320,000 digits: the current state of every employee x item pair
--                  (0 none, 1 planned, 2 ordered, 3 delivered, 4 active, 5 returned, 6 cancelled),
--                  pair p = item * 80000 + employee index, as bench/run exported it from item_state
--
-- Thread t posts the pairs t, t+T, t+2T, ... (T threads), wrapping around after 320,000; each
-- visit moves the pair one step along planned -> ordered -> delivered -> active -> returned ->
-- planned (cancelled -> planned), so every event is a legal, applied transition. Consecutive
-- events name different employees, so a group commit takes the set-based path.
-- The summary goes to stdout as one line "BENCH key=value ...".

local NEMP, NPAIRS = 80000, 320000
local ITEMS = {"mobile_device", "hessen_smartphone", "hessen_voice", "wlan_autologin"}
local STATES = {"planned", "ordered", "delivered", "active", "returned", "cancelled"}
local NEXT = {[0] = 1, 2, 3, 4, 5, 1, 1}

local threads = {}

function setup(thread)
   thread:set("tid", #threads)
   table.insert(threads, thread)
end

function init(args)
   token = assert(os.getenv("BENCH_TOKEN"), "BENCH_TOKEN")
   nonce = assert(os.getenv("BENCH_NONCE"), "BENCH_NONCE")
   at = assert(os.getenv("BENCH_AT"), "BENCH_AT")
   batch = tonumber(os.getenv("BENCH_BATCH") or "0")
   nthreads = tonumber((assert(os.getenv("BENCH_THREADS"), "BENCH_THREADS")))
   local f = assert(io.open((assert(os.getenv("BENCH_STATES"), "BENCH_STATES")), "rb"))
   cur = f:read("*a")
   f:close()
   assert(#cur >= NPAIRS, "BENCH_STATES holds " .. #cur .. " pairs")
   -- wrk calls request() once on thread 0 to check it and throws that request away:
   -- that call must not use up an event
   j = (tid == 0) and -1 or 0
   created, rejected, duplicate = 0, 0, 0
   headers = {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json"}
end

local function event()
   local L = tid + nthreads * j
   j = j + 1
   local p = L % NPAIRS
   local s = string.byte(cur, p + 1) - 48
   for _ = 0, math.floor(L / NPAIRS) do
      s = NEXT[s]
   end
   return string.format(
      '{"event_id":"%s-%04x-4000-8000-%012x","employee":"B%07d","item":"%s","state":"%s","occurred_at":"%s"}',
      nonce, tid, j, p % NEMP, ITEMS[math.floor(p / NEMP) + 1], STATES[s], at)
end

function request()
   if j < 0 then
      j = 0
      return wrk.format("POST", "/v1/events", headers, "{}")
   end
   if batch > 0 then
      local t = {}
      for k = 1, batch do
         t[k] = event()
      end
      return wrk.format("POST", "/v1/events", headers, "[" .. table.concat(t, ",") .. "]")
   end
   return wrk.format("POST", "/v1/events", headers, event())
end

-- Only for batches (a response() makes wrk hand every body to Lua): count per-event results.
-- One pass with plain finds: three pattern-matching gsub passes over each body (about 75 KB for
-- 500 events) cost wrk 3.3 us of CPU per event, on the same two cores as the daemon.
local KEY = '"result":"'
local C, R, D = string.byte("c"), string.byte("r"), string.byte("d")
if (tonumber(os.getenv("BENCH_BATCH") or "0") or 0) > 0 then
   function response(status, hdrs, body)
      if status == 200 and body then
         local c, r, d = 0, 0, 0
         local at = string.find(body, KEY, 1, true)
         while at do
            local b = string.byte(body, at + #KEY)
            if b == C then c = c + 1 elseif b == R then r = r + 1 elseif b == D then d = d + 1 end
            at = string.find(body, KEY, at + #KEY, true)
         end
         created, rejected, duplicate = created + c, rejected + r, duplicate + d
      end
   end
end

function done(summary, latency, requests)
   local c, r, d = 0, 0, 0
   for _, t in ipairs(threads) do
      c = c + (t:get("created") or 0)
      r = r + (t:get("rejected") or 0)
      d = d + (t:get("duplicate") or 0)
   end
   local e = summary.errors
   io.write(string.format(
      "BENCH requests=%d duration_us=%d non2xx=%d sockerr=%d p50_us=%d p90_us=%d p99_us=%d " ..
      "mean_us=%.0f max_us=%d created=%d rejected=%d duplicate=%d\n",
      summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean,
      latency.max, c, r, d))
end
