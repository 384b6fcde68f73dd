-- wrk script for bench/load.py: one connection per thread, so that each thread's requests are
-- strictly sequential and its n-th answer belongs to its n-th request.
--   LOAD_MODE       get | signup | unsubscribe
--   LOAD_PATH       path for get
--   LOAD_RUN        run id, part of every signup address
--   LOAD_CSRF_COOKIE, LOAD_CSRF_TOKEN   fetched once by load.py and reused by every signup
--   LOAD_TOKENS     file of unsubscribe tokens, one a line
--   LOAD_MAX        requests per thread at most (the run is also bounded by wrk -d)
--   LOAD_ANSWERED   file to write "thread number" of every answered signup to, one a line
local mode = os.getenv("LOAD_MODE") or "get"
local max_requests = tonumber(os.getenv("LOAD_MAX") or "100000")
local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

local function urlencode(text)
  return (text:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

local tokens = {}

function init(args)
  answered, failed, answered_ids, last = 0, 0, {}, 0
  if mode == "unsubscribe" then
    for line in io.lines(os.getenv("LOAD_TOKENS")) do
      table.insert(tokens, line)
    end
  end
end

function request()
  counter = counter + 1
  if mode == "signup" then
    last = counter
    local email = string.format("load-%s-%d-%d@example.org", os.getenv("LOAD_RUN"), id, counter)
    local body = "csrfmiddlewaretoken=" .. urlencode(os.getenv("LOAD_CSRF_TOKEN"))
      .. "&email=" .. urlencode(email)
      .. "&keywords=" .. urlencode('"neural field", NeRF, -medical')
      .. "&interests=&authors=&frequency=daily&weekday=0&delivery_hour=8&timezone=Europe%2FParis"
      .. "&max_papers=10&category_mode=boost&website="
    local headers = {
      ["Content-Type"] = "application/x-www-form-urlencoded",
      ["Cookie"] = "csrftoken=" .. os.getenv("LOAD_CSRF_COOKIE"),
    }
    return wrk.format("POST", "/", headers, body)
  elseif mode == "unsubscribe" then
    -- Threads walk the tokens from different places; a repeated one-click is idempotent.
    local token = tokens[((id * 7919 + counter) % #tokens) + 1]
    return wrk.format("POST", "/unsubscribe/" .. token .. "/",
      {["Content-Type"] = "application/x-www-form-urlencoded"}, "List-Unsubscribe=One-Click")
  end
  return wrk.format("GET", os.getenv("LOAD_PATH") or "/")
end

function response(status, headers, body)
  if status < 400 then
    answered = answered + 1
    -- The answer belongs to the last request this thread's only connection sent.
    table.insert(answered_ids, last)
  else
    failed = failed + 1
  end
  if answered + failed >= max_requests then
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local path = os.getenv("LOAD_ANSWERED")
  if mode == "signup" and path then
    local out = io.open(path, "w")
    for _, thread in ipairs(threads) do
      for _, n in ipairs(thread:get("answered_ids")) do
        out:write(string.format("%d %d\n", thread:get("id"), n))
      end
    end
    out:close()
  end
  local per_thread = {}
  for _, thread in ipairs(threads) do
    table.insert(per_thread, string.format("%d:%d:%d", thread:get("id"), thread:get("answered"), thread:get("failed")))
  end
  local e = summary.errors
  io.write(string.format(
    "LOAD requests=%d seconds=%.3f p50_us=%d p90_us=%d p99_us=%d max_us=%d connect=%d read=%d write=%d status=%d timeout=%d threads=%s\n",
    summary.requests, summary.duration / 1e6, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, e.connect, e.read, e.write, e.status, e.timeout, table.concat(per_thread, ",")))
end
