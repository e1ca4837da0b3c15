#!/usr/bin/env bash
# The embedded default under the issue's mix, end to end, with what each
# operation costs. On a throwaway data folder:
#
#  1. creates WALLETS wallets of 1,000,000.00 (one curl, 20 in parallel);
#  2. runs the mix with wrk (bench/mix.lua: 50 % credits, 25 % debits, 25 %
#     transfers, amounts 1.00-99.99; 2 threads, 20 connections, MIX_SECONDS),
#     and prints per operation: server CPU, bytes it wrote (write_bytes of
#     /proc/<pid>/io), fsyncs (perf stat on the server's fsync/fdatasync
#     calls), the time until the three projections caught up with the log,
#     and the server's resident memory (peak and now);
#  3. in the same minute on the same server, GET /wallets/{id} and an unknown
#     path (404) with the same wrk shape, and the ratios of the three;
#  4. with LOAD=1, the seed's wallex-load test after it (extra options go to it);
#     with PROFILE=1, a perf profile of the server during the mix;
#     with TRACE_WRITES=1, the bytes written during 3 s of the mix by file (strace);
#     with WAL_FRAMES=1, which table or index each frame of each WAL file holds
#     (bench/wal-frames.py: the WALs copied right after the mix);
#     with THREAD_IO=1, the bytes each of the server's threads wrote during the
#     mix, by thread name (write_bytes of /proc/<pid>/task/<tid>/io; no tracing,
#     so the group commit's batches stay as they are without it).
#
#   bench/embedded.sh                    the mix, the reads, the ratios
#   PROFILE=1 LOAD=1 bench/embedded.sh --seed 42
set -euo pipefail

ROOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT_DIR"

BIN="${BIN:-target/release}"
# Off the 3000-3100 range other servers on this machine use.
PORT="${PORT:-3400}"
WALLETS="${WALLETS:-1000}"
MIX_SECONDS="${MIX_SECONDS:-10}"
READ_SECONDS="${READ_SECONDS:-5}"
WRK_THREADS=2
WRK_CONNECTIONS=20
# Seconds the projections get to catch up with the log after the mix.
CATCH_UP_SECONDS_MAX=30
# Seconds of strace write tracing (TRACE_WRITES=1).
TRACE_SECONDS=3
DATA_DIR="$(mktemp -d)"
REPORT_DIR="$(mktemp -d)"
URL="http://127.0.0.1:$PORT"

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}" cargo build --release -p command-api -p load-generator
fi

server=""
stop() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; fi
  rm -rf "$DATA_DIR"
}
trap stop EXIT

WALLEX_DATA_DIR="$DATA_DIR" HOST=127.0.0.1 PORT="$PORT" RUST_LOG=warn "$BIN/command-api" \
  >"$REPORT_DIR/server.log" 2>&1 &
server=$!
for _ in $(seq 1 100); do
  curl -fs "$URL/health" >/dev/null && break
  sleep 0.1
done

echo "== machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'); load before: $(cut -d' ' -f1-3 /proc/loadavg)"

# 1. The wallets, one curl for all of them.
for n in $(seq 1 "$WALLETS"); do
  if [ "$n" -gt 1 ]; then echo next; fi
  printf 'url = "%s/wallets"\nheader = "Content-Type: application/json"\ndata = "{\\"walletId\\":\\"bench-%d\\",\\"ownerId\\":\\"owner-%d\\",\\"initialBalance\\":1000000.00}"\noutput = "/dev/null"\nwrite-out = "%%{http_code}\\n"\n' \
    "$URL" "$n" "$n"
done >"$REPORT_DIR/create.curl"
created="$(curl -s --no-progress-meter --parallel --parallel-max 20 -K "$REPORT_DIR/create.curl" |
  grep -o '201' | wc -l)"
echo "wallets created  $created of $WALLETS"

# utime+stime ticks, write_bytes of the server.
server_cpu() { awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$server/stat"; }
server_written() { awk '/^write_bytes/ {print $2}' "/proc/$server/io"; }
# "<tid> <name> <write_bytes>" for each of the server's threads.
thread_written() {
  for task in /proc/"$server"/task/*; do
    printf '%s %s %s\n' "${task##*/}" "$(tr ' ' _ <"$task/comm")" \
      "$(awk '/^write_bytes/ {print $2}' "$task/io" 2>/dev/null || echo 0)"
  done
}

# The in-process projections' lag histogram (seconds from an event's
# occurrence to its sink's commit), to take the mix's share of it.
lag_buckets() { curl -fs "$URL/metrics" | grep '^wallex_relay_event_lag_seconds_bucket{' || true; }

# 2. The mix.
lag_buckets >"$REPORT_DIR/lag-before.txt"
cpu_before="$(server_cpu)"
written_before="$(server_written)"
thread_written >"$REPORT_DIR/threads-before.txt"
perf stat -e 'syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync' -p "$server" \
  -o "$REPORT_DIR/fsync.txt" -- sleep "$MIX_SECONDS" >/dev/null 2>&1 &
observers=($!)
if [ "${PROFILE:-0}" = 1 ]; then
  perf record -F 999 -g --call-graph dwarf,16384 -p "$server" -o "$REPORT_DIR/perf.data" \
    -- sleep "$MIX_SECONDS" \
    >/dev/null 2>&1 &
  observers+=($!)
fi
if [ "${TRACE_WRITES:-0}" = 1 ]; then
  (sleep 2 && timeout -s INT "$TRACE_SECONDS" strace -f -qq -e trace=pwrite64,write -y \
    -p "$server" -o "$REPORT_DIR/writes.strace") &
  observers+=($!)
fi
WALLETS="$WALLETS" WALLET_PREFIX=bench wrk -t"$WRK_THREADS" -c"$WRK_CONNECTIONS" \
  -d"${MIX_SECONDS}s" --latency -s bench/mix.lua "$URL" | tee "$REPORT_DIR/mix.txt" | grep '^mix:'
mix_end="$(date +%s.%N)"
if [ "${WAL_FRAMES:-0}" = 1 ]; then
  mkdir -p "$REPORT_DIR/wal"
  cp "$DATA_DIR"/*.db-wal "$REPORT_DIR/wal/"
fi
wait "${observers[@]}" || true  # timeout ends strace with 124
for _ in $(seq 1 $((CATCH_UP_SECONDS_MAX * 10))); do
  unprocessed="$(curl -fs "$URL/health/kafka" | sed -n 's/.*"unprocessedEvents":\([0-9]*\).*/\1/p')"
  [ "${unprocessed:-1}" = 0 ] && break
  sleep 0.1
done
caught_up="$(awk -v end="$mix_end" -v now="$(date +%s.%N)" 'BEGIN {printf "%.1f", now - end}')"
cpu_after="$(server_cpu)"
written_after="$(server_written)"
thread_written >"$REPORT_DIR/threads-after.txt"
requests="$(sed -n 's/^mix: \([0-9]*\) requests.*/\1/p' "$REPORT_DIR/mix.txt")"
fsyncs="$(awk '/syscalls:sys_enter_f/ {gsub(",", "", $1); n += $1} END {print n + 0}' "$REPORT_DIR/fsync.txt")"
awk -v c="$((cpu_after - cpu_before))" -v hz="$(getconf CLK_TCK)" -v w="$((written_after - written_before))" \
  -v n="$requests" -v f="$fsyncs" -v s="$caught_up" -v left="${unprocessed:-?}" 'BEGIN {
  printf "per operation    server CPU %.0f us, written %.2f KiB, fsyncs %.3f\n", c / hz / n * 1e6, w / n / 1024, f / n
  printf "projections      caught up %s s after the mix (events left: %s)\n", s, left
}'
# The server's resident memory: its peak so far and now (after the mix and the catch-up).
awk '/^VmHWM/ {peak = $2} /^VmRSS/ {now = $2} END {printf "memory           peak %.0f MiB, now %.0f MiB resident\n", peak / 1024, now / 1024}' \
  "/proc/$server/status"
# Lag p50/p99 per projection over the mix: the upper bound of the bucket
# that holds the quantile (the histogram's resolution), in milliseconds.
lag_buckets >"$REPORT_DIR/lag-after.txt"
awk -F'[{}",= ]+' '
  FILENAME == ARGV[1] {before[$3 "|" $5] = $NF; next}
  {sink = $3; bound = $5; n = $NF - before[sink "|" bound]; count[sink "|" bound] = n
   if (bound == "+Inf") total[sink] = n; else bounds[sink] = bounds[sink] " " bound}
  END {
    for (sink in total) {
      line = sprintf("lag %-12s", sink)
      split(bounds[sink], list, " ")
      for (q = 1; q <= 2; q++) {
        quantile = (q == 1) ? 0.5 : 0.99
        shown = "> " list[length(list)] * 1000 " ms"
        for (i = 1; i <= length(list); i++)
          if (count[sink "|" list[i]] >= quantile * total[sink]) {shown = "<= " list[i] * 1000 " ms"; break}
        line = line sprintf("  p%s %s", quantile * 100, shown)
      }
      printf "%s  (%d events)\n", line, total[sink]
    }
  }' "$REPORT_DIR/lag-before.txt" "$REPORT_DIR/lag-after.txt" | sort

# 3. Reads and 404s in the same minute.
cat >"$REPORT_DIR/read.lua" <<EOF
local wallets = $WALLETS
request = function()
  return wrk.format("GET", "/wallets/bench-" .. math.random(wallets))
end
EOF
rate() { sed -n 's/^Requests\/sec: *\([0-9.]*\)/\1/p'; }
read_rate="$(wrk -t"$WRK_THREADS" -c"$WRK_CONNECTIONS" -d"${READ_SECONDS}s" -s "$REPORT_DIR/read.lua" "$URL" | rate)"
missing_rate="$(wrk -t"$WRK_THREADS" -c"$WRK_CONNECTIONS" -d"${READ_SECONDS}s" "$URL/no-such-path" | rate)"
mix_rate="$(sed -n 's/^mix: [0-9]* requests in [0-9.]* s, \([0-9]*\) ops.*/\1/p' "$REPORT_DIR/mix.txt")"
awk -v m="$mix_rate" -v r="$read_rate" -v x="$missing_rate" 'BEGIN {
  printf "same server      mix %.0f/s, GET /wallets/{id} %.0f/s, 404 %.0f/s; mix/read %.2f, mix/404 %.2f\n", m, r, x, m / r, m / x
}'
echo "load after       $(cut -d' ' -f1-3 /proc/loadavg)"
echo "WAL files        $(cd "$DATA_DIR" && du -k -- *-wal | awk '{printf "%s %d KiB  ", $2, $1}')"

if [ "${TRACE_WRITES:-0}" = 1 ]; then
  echo "== bytes written in ${TRACE_SECONDS} s of the mix, by file (strace) =="
  awk -F'[<>]' '/pwrite64\(|write\(/ && /= [0-9]+$/ {
      n = split($0, parts, " = "); bytes[$2] += parts[n]
    } END {for (f in bytes) if (f !~ /TCP|socket|pipe|anon/) printf "%12d %s\n", bytes[f], f}' \
    "$REPORT_DIR/writes.strace" | sort -rn | sed "s|$DATA_DIR/||"
fi

if [ "${THREAD_IO:-0}" = 1 ]; then
  echo "== bytes written per operation during the mix, by thread name =="
  awk -v n="$requests" 'FILENAME == ARGV[1] {before[$1] = $3; next}
    {bytes[$2] += $3 - before[$1]}
    END {for (t in bytes) if (bytes[t] > 0) printf "%8.2f KiB  %s\n", bytes[t] / n / 1024, t}' \
    "$REPORT_DIR/threads-before.txt" "$REPORT_DIR/threads-after.txt" | sort -rn
fi

if [ "${WAL_FRAMES:-0}" = 1 ]; then
  kill "$server" 2>/dev/null && wait "$server" 2>/dev/null || true
  server=""
  for wal in "$REPORT_DIR"/wal/*.db-wal; do
    database="$(basename "$wal" -wal)"
    cp "$DATA_DIR/$database" "$REPORT_DIR/wal/$database"
  done
  echo "== frames of each WAL at the end of the mix, by table or index =="
  python3 bench/wal-frames.py "$REPORT_DIR/wal"
fi

if [ "${PROFILE:-0}" = 1 ]; then
  echo "== server profile: share of samples by thread =="
  perf report -i "$REPORT_DIR/perf.data" --no-children --sort comm --stdio -g none 2>/dev/null |
    grep -v '^#' | grep -v '^$' | sed 's/ *$//' | head -8
  echo "== server profile: share of samples under each component (inclusive) =="
  perf report -i "$REPORT_DIR/perf.data" --children --sort symbol --stdio -g none 2>/dev/null |
    grep -E '\] (event_store::embedded::run_writer|search_index::embedded::index_events|ledger::embedded::insert_batch|read_model::embedded::apply_batch|<actix_http::h1::dispatcher::Dispatcher<.*>::poll|sqlite3_wal_checkpoint_v2|sqlite3_step|__x64_sys_fsync|__x64_sys_fdatasync|__x64_sys_futex|__x64_sys_pwrite64|__x64_sys_sendto|__x64_sys_recvfrom|__x64_sys_epoll_wait) ' |
    awk '!seen[$4]++ {print $1, $4}'
  echo "(perf data kept in $REPORT_DIR/perf.data)"
fi

# 4. The seed's load test, on the same server.
if [ "${LOAD:-0}" = 1 ]; then
  "$BIN/wallex-load" --url "$URL" --wallets 1000 --operations 20000 --workers 20 "$@"
fi
