-- wrk: every request from one of BENCH_ACCOUNTS accounts, spread evenly
local n = tonumber(os.getenv("BENCH_ACCOUNTS") or "5000")
local i = 0

request = function()
    i = i + 1
    return wrk.format(nil, nil, { ["X-API-Key"] = "acct-" .. (i % n) }, nil)
end
