#!/usr/bin/env bash
# The seed's load test against the embedded default, with what each operation
# costs: CPU of the server and of the generator, bytes the server wrote, and,
# with PROFILE=1, a perf profile of the server split by component.
#
#   bench/embedded.sh [wallex-load options]          e.g. --seed 42
#   PROFILE=1 bench/embedded.sh --seed 42            needs `perf`
set -euo pipefail

ROOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT_DIR"

BIN=target/release
PORT="${PORT:-3300}"
# The seed's shape; wallex-load's own options come after and may override nothing else.
OPERATIONS=20000
DATA_DIR="$(mktemp -d)"
REPORT_DIR="$(mktemp -d)"
# Seconds of profile: the operation phase of the seed's run on this machine.
PROFILE_SECONDS=8

cargo build --release -p command-api -p load-generator

server=""
profiler=""
stop() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; fi
  rm -rf "$DATA_DIR"
}
trap stop EXIT

WALLEX_DATA_DIR="$DATA_DIR" HOST=127.0.0.1 PORT="$PORT" RUST_LOG=warn "$BIN/command-api" \
  >"$REPORT_DIR/server.log" 2>&1 &
server=$!
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$PORT/health" >/dev/null && break
  sleep 0.1
done

if [ "${PROFILE:-0}" = 1 ]; then
  perf record -F 999 -g --call-graph dwarf,16384 -p "$server" -o "$REPORT_DIR/perf.data" \
    -- sleep "$PROFILE_SECONDS" >/dev/null 2>&1 &
  profiler=$!
fi

/usr/bin/time -f "%U %S" -o "$REPORT_DIR/generator.time" \
  "$BIN/wallex-load" --url "http://127.0.0.1:$PORT" --wallets 1000 \
  --operations "$OPERATIONS" --workers 20 "$@"
if [ -n "$profiler" ]; then wait "$profiler"; fi

# utime and stime (clock ticks) of the server, and what it wrote, after the run.
read -r server_user server_sys < <(awk '{print $14, $15}' "/proc/$server/stat")
ticks="$(getconf CLK_TCK)"
written="$(awk '/^wchar/ {print $2}' "/proc/$server/io")"
write_calls="$(awk '/^syscw/ {print $2}' "/proc/$server/io")"
read -r generator_user generator_sys <"$REPORT_DIR/generator.time"

echo "== cost per request (${OPERATIONS} operations, 1000 creations, 1000 reads) =="
awk -v su="$server_user" -v ss="$server_sys" -v hz="$ticks" -v gu="$generator_user" \
  -v gs="$generator_sys" -v w="$written" -v wc="$write_calls" -v n="$((OPERATIONS + 2000))" 'BEGIN {
  printf "server CPU      %.0f us (user %.0f, kernel %.0f)\n", (su + ss) / hz / n * 1e6, su / hz / n * 1e6, ss / hz / n * 1e6
  printf "generator CPU   %.0f us\n", (gu + gs) / n * 1e6
  printf "server writes   %.1f KiB in %.1f write calls\n", w / n / 1024, wc / n
}'

if [ "${PROFILE:-0}" = 1 ]; then
  echo "== server profile: share of samples by thread =="
  perf report -i "$REPORT_DIR/perf.data" --no-children --sort comm --stdio -g none 2>/dev/null |
    grep -v '^#' | grep -v '^$' | sed 's/ *$//' | head -8
  echo "== server profile: share of samples under each component (inclusive) =="
  perf report -i "$REPORT_DIR/perf.data" --children --sort symbol --stdio -g none 2>/dev/null |
    grep -E '\] (event_store::embedded::run_writer|search_index::embedded::index_events|ledger::embedded::insert_batch|read_model::embedded::apply_batch|<actix_http::h1::dispatcher::Dispatcher<.*>::poll|sqlite3_wal_checkpoint_v2|sqlite3_step|__x64_sys_fsync|__x64_sys_futex|__x64_sys_pwrite64) ' |
    awk '!seen[$4]++ {print $1, $4}'
  echo "(perf data kept in $REPORT_DIR/perf.data)"
fi
