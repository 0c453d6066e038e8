-- wrk script: replays pre-signed deliveries from a file (id \t timestamp \t signature \t body),
-- each wrk thread taking every Nth line so that no two requests share an id.
-- Usage: wrk -s deliveries.lua URL -- FILE THREADS [RATE_PER_CONNECTION_PER_SECOND]

local threads_made = 0
function setup(thread)
  thread:set("tid", threads_made)
  threads_made = threads_made + 1
end

local requests = {}
local counter = 0

function init(args)
  local file, threads, rate = args[1], tonumber(args[2]), tonumber(args[3] or "0")
  local index = 0
  for line in io.lines(file) do
    if index % threads == tid then
      local id, ts, sig, body = line:match("^([^\t]+)\t([^\t]+)\t([^\t]+)\t(.*)$")
      requests[#requests + 1] = wrk.format("POST", wrk.path, {
        ["Content-Type"] = "application/json",
        ["webhook-id"] = id,
        ["webhook-timestamp"] = ts,
        ["webhook-signature"] = sig,
      }, body)
    end
    index = index + 1
  end
  if rate > 0 then
    -- Defined only when pacing: with a delay() wrk puts every request through a timer,
    -- which costs its own core time that Redis (sharing the core) would otherwise get.
    -- The pause is drawn uniformly from [0, 2 * mean): with a fixed one, the connections
    -- stay in step and fire in bursts of one request each, and p99 measures the burst.
    local mean_ms = 1000 / rate
    math.randomseed(os.time() * 100 + tid)
    delay = function() return math.random() * 2 * mean_ms end
  end
end

function request()
  counter = counter % #requests + 1
  return requests[counter]
end

