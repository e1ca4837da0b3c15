-- The issue's mix for wrk: 50 % credits, 25 % debits, 25 % transfers over
-- WALLETS wallets named <WALLET_PREFIX>-<n> (created beforehand, see
-- bench/embedded.sh), amounts 1.00 to 99.99. With TOKEN set, every request
-- carries it as a bearer token.
--
--   WALLETS=1000 WALLET_PREFIX=bench wrk -t2 -c20 -d10s -s bench/mix.lua http://127.0.0.1:3400

local wallets = tonumber(os.getenv("WALLETS") or "1000")
local prefix = os.getenv("WALLET_PREFIX") or "bench"
local token = os.getenv("TOKEN")
local headers = { ["Content-Type"] = "application/json" }
if token and token ~= "" then
  headers["Authorization"] = "Bearer " .. token
end

local threads = {}
local thread_count = 0

function setup(thread)
  thread_count = thread_count + 1
  thread:set("thread_number", thread_count)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(os.time() * 1000 + thread_number)
  non_2xx = 0
end

local function wallet(n)
  return prefix .. "-" .. n
end

local function amount()
  local cents = math.random(100, 9999)
  return string.format("%d.%02d", math.floor(cents / 100), cents % 100)
end

function request()
  local draw = math.random(100)
  local from = math.random(wallets)
  if draw <= 50 then
    return wrk.format("POST", "/wallets/" .. wallet(from) .. "/credit", headers,
      '{"amount":' .. amount() .. '}')
  elseif draw <= 75 then
    return wrk.format("POST", "/wallets/" .. wallet(from) .. "/debit", headers,
      '{"amount":' .. amount() .. '}')
  end
  local to = math.random(wallets - 1)
  if to >= from then
    to = to + 1
  end
  return wrk.format("POST", "/wallets/" .. wallet(from) .. "/transfer", headers,
    '{"toWalletId":"' .. wallet(to) .. '","amount":' .. amount() .. '}')
end

function response(status, response_headers, body)
  if status < 200 or status > 299 then
    non_2xx = non_2xx + 1
  end
end

function done(summary, latency, requests)
  local failed = 0
  for _, thread in ipairs(threads) do
    failed = failed + thread:get("non_2xx")
  end
  local seconds = summary.duration / 1e6
  io.write(string.format(
    "mix: %d requests in %.2f s, %.0f ops/s, p50 %.2f ms, p99 %.2f ms, max %.2f ms, non-2xx %d, socket errors %d\n",
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    failed, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
