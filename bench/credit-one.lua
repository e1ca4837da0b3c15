-- Credits of 1.00 to one wallet, WALLET: what gives a wallet a long history
-- (bench/history.sh runs it in short rounds until the wallet's version is
-- high enough).
--
--   WALLET=long wrk -t2 -c20 -d5s -s bench/credit-one.lua http://127.0.0.1:3401

local wallet = os.getenv("WALLET") or "long"
local body = '{"amount":1.00}'
local headers = { ["Content-Type"] = "application/json" }

function request()
  return wrk.format("POST", "/wallets/" .. wallet .. "/credit", headers, body)
end
