#!/usr/bin/env bash
# Cost flat in history (issue 13): a command on a wallet with a long history
# against the same command on a new wallet, on the embedded default (release
# build), in three situations:
#
#  1. warm: SAMPLES debits alternating between the long and the new wallet,
#     one keep-alive connection, median and p90 of each;
#  2. right after a restart (nothing cached): the first debit on each, over
#     RESTARTS restarts, median and p90 of each;
#  3. transfers run as the transfer process (TRANSFERS=process): the first
#     transfer out of each after each of RESTARTS restarts, then SAMPLES
#     alternating;
#  4. reads, READ_SAMPLES alternating after a restart: the wallet as of its
#     version 5, as of a version halfway through the long history and as of
#     that version's time (the new wallet's version 5), the ledger summary
#     now and at that time, a hold voided a little before the newest snapshot (SETTLED_GAP
#     credits after it), the pending holds (one each, placed before the gap),
#     the voided holds and every hold (the hold directory's listing);
#     and, once, a hold voided at the start of the long history (read back as
#     far as it is old: the whole stream).
#
# After a restart the first request on the connection pays for the TCP
# connection and the server's first-request work (its pools, its statements),
# whichever wallet it names: each round therefore first sends a credit to a
# third wallet (`payee`) on the same connection, and the long and the new
# wallet take turns at going first.
#
# The long wallet gets at least HISTORY_EVENTS credits of 1.00 first (wrk, 2
# threads, 20 connections, bench/credit-one.lua, in rounds of FILL_ROUND_SECONDS
# until the wallet's version is there). Prints each latency and the ratio
# long / new; the issue's bound is 1.5.
#
#   bench/history.sh                       100,000 events
#   HISTORY_EVENTS=10000 SKIP_BUILD=1 bench/history.sh
set -euo pipefail

ROOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT_DIR"

BIN="${BIN:-target/release}"
PORT="${PORT:-3401}"
HISTORY_EVENTS="${HISTORY_EVENTS:-100000}"
SAMPLES="${SAMPLES:-200}"
READ_SAMPLES="${READ_SAMPLES:-50}"
# Credits between a settled hold and the end of the history: past the next
# snapshot (every 100 events), within one backward page (1,000 events).
SETTLED_GAP=250
RESTARTS="${RESTARTS:-7}"
WRK_THREADS=2
WRK_CONNECTIONS=20
# One round of credits to the long wallet, in seconds, and the most rounds.
FILL_ROUND_SECONDS=5
FILL_ROUNDS_MAX=360
DATA_DIR="$(mktemp -d)"
WORK_DIR="$(mktemp -d)"
URL="http://127.0.0.1:$PORT"

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}" cargo build --release -p command-api
fi

server=""
stop_server() {
  if [ -n "$server" ]; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    server=""
  fi
}
cleanup() {
  stop_server
  rm -rf "$DATA_DIR" "$WORK_DIR"
}
trap cleanup EXIT

# start_server [TRANSFERS mode]
start_server() {
  WALLEX_DATA_DIR="$DATA_DIR" HOST=127.0.0.1 PORT="$PORT" RUST_LOG=warn \
    TRANSFERS="${1:-atomic}" "$BIN/command-api" >>"$WORK_DIR/server.log" 2>&1 &
  server=$!
  for _ in $(seq 1 300); do
    curl -fs "$URL/health" >/dev/null && return 0
    sleep 0.1
  done
  echo "the server did not start; its log:" >&2
  cat "$WORK_DIR/server.log" >&2
  exit 1
}

post() { curl -fs -o /dev/null -H 'Content-Type: application/json' -d "$2" "$URL$1"; }

# timed_requests FILE PATH_A BODY_A PATH_B BODY_B COUNT [ORDER]: COUNT pairs of
# POSTs (a then b, or b then a when ORDER is "ba"), sequential on one keep-alive
# connection opened by a credit to the third wallet (label w, not reported); times in ms, one per line, by
# label, appended to FILE.
timed_requests() {
  local out="$1" a="$2" body_a="$3" b="$4" body_b="$5" count="$6" order="${7:-ab}"
  printf 'url = "%s/wallets/payee/credit"\nrequest = "POST"\nheader = "Content-Type: application/json"\ndata = "{\\"amount\\":0.01}"\noutput = "/dev/null"\nwrite-out = "w %%{http_code} %%{time_total}\\n"\n' \
    "$URL" >"$WORK_DIR/timed.curl"
  for n in $(seq 1 "$count"); do
    for side in $(echo "$order" | fold -w1); do
      if [ "$side" = a ]; then path="$a" body="$body_a"; else path="$b" body="$body_b"; fi
      echo next >>"$WORK_DIR/timed.curl"
      printf 'url = "%s%s"\nrequest = "POST"\nheader = "Content-Type: application/json"\ndata = "%s"\noutput = "/dev/null"\nwrite-out = "%s %%{http_code} %%{time_total}\\n"\n' \
        "$URL" "$path" "$(printf '%s' "$body" | sed 's/"/\\"/g')" "$side" >>"$WORK_DIR/timed.curl"
    done
  done
  curl -s --no-progress-meter -K "$WORK_DIR/timed.curl" | grep -v '^w ' >>"$out"
  if grep -qv ' 201 ' "$out"; then
    echo "a timed request was refused:" >&2
    grep -v ' 201 ' "$out" | head -5 >&2
    exit 1
  fi
}

# restarted_requests FILE MODE PATH_A BODY_A PATH_B BODY_B: RESTARTS rounds of a
# restart in TRANSFERS mode MODE and the first request on each wallet, the
# wallets taking turns at going first.
restarted_requests() {
  local out="$1" mode="$2" round
  for round in $(seq 1 "$RESTARTS"); do
    stop_server
    start_server "$mode"
    if [ $((round % 2)) = 1 ]; then order=ab; else order=ba; fi
    timed_requests "$out" "$3" "$4" "$5" "$6" 1 "$order"
  done
}

# stats FILE LABEL: "median p90" in ms of the label's lines.
stats() {
  awk -v label="$2" '$1 == label { print $3 * 1000 }' "$1" | sort -n |
    awk '{ v[NR] = $1 } END { p90 = int(NR * 0.9); if (p90 < 1) p90 = 1; printf "%.3f %.3f", v[int((NR + 1) / 2)], v[p90] }'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

report() {
  local title="$1" file="$2"
  read -r long_median long_p90 <<<"$(stats "$file" a)"
  read -r new_median new_p90 <<<"$(stats "$file" b)"
  printf '%-44s long median %7s ms p90 %7s ms | new median %7s ms p90 %7s ms | ratio median %s p90 %s\n' \
    "$title" "$long_median" "$long_p90" "$new_median" "$new_p90" \
    "$(ratio "$long_median" "$new_median")" "$(ratio "$long_p90" "$new_p90")"
}

echo "== machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'); load before: $(cut -d' ' -f1-3 /proc/loadavg)"

start_server atomic
post /wallets '{"walletId":"long","ownerId":"owner-long","initialBalance":1000000000.00}'
post /wallets '{"walletId":"new","ownerId":"owner-new","initialBalance":1000000.00}'
post /wallets '{"walletId":"payee","ownerId":"owner-payee","initialBalance":0.00}'
post /wallets/long/holds '{"amount":1.00,"holdId":"first-long"}'
post /holds/first-long/void '{}'

version_of() { curl -fs "$URL/wallets/$1" | sed -n 's/.*"version":\([0-9]*\).*/\1/p'; }
fill_started=$(date +%s.%N)
version=$(version_of long)
for _ in $(seq 1 "$FILL_ROUNDS_MAX"); do
  [ "$version" -ge "$HISTORY_EVENTS" ] && break
  WALLET=long wrk -t"$WRK_THREADS" -c"$WRK_CONNECTIONS" -d"${FILL_ROUND_SECONDS}s" \
    -s bench/credit-one.lua "$URL" >>"$WORK_DIR/fill.txt"
  version=$(version_of long)
done
fill_seconds=$(awk -v s="$fill_started" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
echo "history        wallet long at version $version after ${fill_seconds} s of credits"

debit='{"amount":0.01}'
timed_requests "$WORK_DIR/warm.txt" /wallets/long/debit "$debit" /wallets/new/debit "$debit" "$SAMPLES"
report "1. debit, warm ($SAMPLES each)" "$WORK_DIR/warm.txt"

restarted_requests "$WORK_DIR/cold.txt" atomic /wallets/long/debit "$debit" /wallets/new/debit "$debit"
report "2. first debit after a restart ($RESTARTS)" "$WORK_DIR/cold.txt"

transfer='{"toWalletId":"payee","amount":0.01}'
restarted_requests "$WORK_DIR/process-cold.txt" process /wallets/long/transfer "$transfer" \
  /wallets/new/transfer "$transfer"
report "3. first transfer as a process ($RESTARTS)" "$WORK_DIR/process-cold.txt"
timed_requests "$WORK_DIR/process.txt" /wallets/long/transfer "$transfer" \
  /wallets/new/transfer "$transfer" "$SAMPLES"
report "3. transfer as a process ($SAMPLES each)" "$WORK_DIR/process.txt"

# credits WALLET COUNT: COUNT credits of 0.01, sequential on one connection.
credits() {
  local n
  for n in $(seq 1 "$2"); do
    [ "$n" = 1 ] || echo next
    printf 'url = "%s/wallets/%s/credit"\nrequest = "POST"\nheader = "Content-Type: application/json"\ndata = "{\\"amount\\":0.01}"\noutput = "/dev/null"\n' "$URL" "$1"
  done >"$WORK_DIR/credits.curl"
  curl -fs --no-progress-meter -K "$WORK_DIR/credits.curl"
}

# timed_reads FILE PATH_A PATH_B COUNT: COUNT pairs of GETs on one keep-alive
# connection (a warm-up read of payee first, not reported); times as timed_requests'.
timed_reads() {
  local out="$1" n
  printf 'url = "%s/wallets/payee"\noutput = "/dev/null"\nwrite-out = "w %%{http_code} %%{time_total}\\n"\n' "$URL" >"$WORK_DIR/reads.curl"
  for n in $(seq 1 "$4"); do
    printf 'next\nurl = "%s%s"\noutput = "/dev/null"\nwrite-out = "a %%{http_code} %%{time_total}\\n"\n' "$URL" "$2"
    printf 'next\nurl = "%s%s"\noutput = "/dev/null"\nwrite-out = "b %%{http_code} %%{time_total}\\n"\n' "$URL" "$3"
  done >>"$WORK_DIR/reads.curl"
  curl -s --no-progress-meter -K "$WORK_DIR/reads.curl" | grep -v '^w ' >"$out"
  if grep -qv ' 200 ' "$out"; then
    echo "a timed read was refused:" >&2
    grep -v ' 200 ' "$out" | head -5 >&2
    exit 1
  fi
}

for wallet in long new; do
  post "/wallets/$wallet/holds" "{\"amount\":1.00,\"holdId\":\"open-$wallet\"}"
  post "/wallets/$wallet/holds" "{\"amount\":1.00,\"holdId\":\"settled-$wallet\"}"
  post "/holds/settled-$wallet/void" '{}'
  credits "$wallet" "$SETTLED_GAP"
done
stop_server
start_server process # the folder now records process transfers: it keeps that mode
timed_reads "$WORK_DIR/as-of.txt" "/wallets/long?version=5" "/wallets/new?version=5" "$READ_SAMPLES"
report "4. wallet as of version 5 ($READ_SAMPLES each)" "$WORK_DIR/as-of.txt"
# Halfway through the long history, between two snapshots; the new wallet
# at its version 5. By version, then by the time of that version's event.
middle=$((version / 2 + 50))
updated_at() { curl -fs "$URL/wallets/$1?version=$2" | sed -n 's/.*"updatedAt":"\([^"]*\)".*/\1/p'; }
middle_at=$(updated_at long "$middle")
new_at=$(updated_at new 5)
timed_reads "$WORK_DIR/as-of-middle.txt" "/wallets/long?version=$middle" "/wallets/new?version=5" "$READ_SAMPLES"
report "4. wallet as of version $middle / 5 ($READ_SAMPLES each)" "$WORK_DIR/as-of-middle.txt"
timed_reads "$WORK_DIR/at-middle.txt" "/wallets/long?at=$middle_at" "/wallets/new?at=$new_at" "$READ_SAMPLES"
report "4. wallet at its version's time ($READ_SAMPLES each)" "$WORK_DIR/at-middle.txt"
timed_reads "$WORK_DIR/summary.txt" /ledger/wallet/long/summary /ledger/wallet/new/summary "$READ_SAMPLES"
report "4. ledger summary ($READ_SAMPLES each)" "$WORK_DIR/summary.txt"
timed_reads "$WORK_DIR/summary-at.txt" "/ledger/wallet/long/summary?at=$middle_at" \
  "/ledger/wallet/new/summary?at=$new_at" "$READ_SAMPLES"
report "4. ledger summary at that time ($READ_SAMPLES each)" "$WORK_DIR/summary-at.txt"
timed_reads "$WORK_DIR/settled.txt" /holds/settled-long /holds/settled-new "$READ_SAMPLES"
report "4. hold settled before the snapshot ($READ_SAMPLES)" "$WORK_DIR/settled.txt"
timed_reads "$WORK_DIR/pending.txt" "/wallets/long/holds?status=PENDING" \
  "/wallets/new/holds?status=PENDING" "$READ_SAMPLES"
report "4. pending holds ($READ_SAMPLES each)" "$WORK_DIR/pending.txt"
timed_reads "$WORK_DIR/voided.txt" "/wallets/long/holds?status=VOIDED" \
  "/wallets/new/holds?status=VOIDED" "$READ_SAMPLES"
report "4. voided holds ($READ_SAMPLES each)" "$WORK_DIR/voided.txt"
timed_reads "$WORK_DIR/all-holds.txt" /wallets/long/holds /wallets/new/holds "$READ_SAMPLES"
report "4. every hold ($READ_SAMPLES each)" "$WORK_DIR/all-holds.txt"
first=$(curl -fs -o /dev/null -w '%{time_total}' "$URL/holds/first-long")
echo "4. hold voided at the start of the long history: $(awk -v t="$first" 'BEGIN { printf "%.3f", t * 1000 }') ms (once)"
