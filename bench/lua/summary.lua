-- bench/lua/summary.lua: plain GETs (wrk's own request), the summary as one line
-- "BENCH key=value ..." on stdout for bench/run.
function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "BENCH requests=%d duration_us=%d non2xx=%d sockerr=%d p50_us=%d p90_us=%d p99_us=%d " ..
      "mean_us=%.0f max_us=%d bytes=%d\n",
      summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean,
      latency.max, summary.bytes))
end
