-- wrk: every request from one of BENCH_ACCOUNTS accounts, chosen at
-- random (each wrk thread with its own seed), so spread evenly
local n = tonumber(os.getenv("BENCH_ACCOUNTS") or "5000")
local threads = 0

function setup(thread)
    threads = threads + 1
    thread:set("seed", threads * 7919)
end

function init(args)
    math.randomseed(seed)
end

request = function()
    return wrk.format(nil, nil,
                      { ["X-API-Key"] = "acct-" .. math.random(0, n - 1) }, nil)
end
