-- wrk: accounts PREFIX0..PREFIX(N-1); after SWITCH_AT seconds (if set)
-- the prefix changes to PREFIX2 (new accounts, granted after a restart)
local n = tonumber(os.getenv("FAULT_ACCOUNTS") or "200")
local prefix = os.getenv("FAULT_PREFIX") or "a-"
local prefix2 = os.getenv("FAULT_PREFIX2") or prefix
local switch_at = tonumber(os.getenv("FAULT_SWITCH_AT") or "0")
local start = os.time()
local i = 0

request = function()
    i = i + 1
    local p = prefix
    if switch_at > 0 and os.time() - start >= switch_at then
        p = prefix2
    end
    return wrk.format("POST", "/v1/gen", { ["X-API-Key"] = p .. (i % n) }, nil)
end
