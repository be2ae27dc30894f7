-- Requests for bench/runtime_api.py, driven by wrk in its own process:
--
--   wrk -t2 -c16 -d10s -H 'Authorization: Bearer …' -s bench/load/wrk.lua http://host:port \
--       -- <op> <path> [ids-file]
--
-- op "create": POST <path> with a random order as JSON;
-- op "one":    GET <path>/<id>, the id drawn at random from ids-file (one id per line);
-- op "list":   GET <path> as given (the query string carries filter, sort and limit).
-- done() prints one line, "wrk-result {json}": counts, errors and latency percentiles (µs).

local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("seed", os.time() * 1000 + counter * 7919)
end

local op, path, ids = nil, nil, {}
local statuses = { "open", "paid", "void" }

function init(args)
  op, path = args[1], args[2]
  math.randomseed(seed or os.time())
  if op == "one" then
    for line in io.lines(args[3]) do
      if #line > 0 then ids[#ids + 1] = line end
    end
    assert(#ids > 0, "no ids in " .. args[3])
  elseif op == "create" then
    wrk.method = "POST"
    wrk.headers["Content-Type"] = "application/json"
  end
end

function request()
  if op == "create" then
    local body = string.format(
      '{"name":"order %d","amount":"%d.%02d","status":"%s","qty":%d}',
      math.random(1, 1000000000), math.random(0, 9999), math.random(0, 99),
      statuses[math.random(1, 3)], math.random(0, 100))
    return wrk.format("POST", path, nil, body)
  elseif op == "one" then
    return wrk.format("GET", path .. "/" .. ids[math.random(1, #ids)])
  end
  return wrk.format("GET", path)
end

function done(summary, latency, requests)
  local q = {}
  -- 0.5 % steps, then the tail; enough to merge rounds into one distribution afterwards.
  for i = 1, 199 do q[#q + 1] = string.format('"%.1f":%d', i / 2, latency:percentile(i / 2)) end
  q[#q + 1] = string.format('"99.9":%d', latency:percentile(99.9))
  q[#q + 1] = string.format('"100.0":%d', latency.max)
  local e = summary.errors
  io.write(string.format(
    'wrk-result {"requests":%d,"duration_us":%d,"errors":{"connect":%d,"read":%d,'
      .. '"write":%d,"status":%d,"timeout":%d},"percentiles_us":{%s}}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    table.concat(q, ",")))
end
