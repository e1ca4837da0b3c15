#!/usr/bin/env bash
# The seed's load test against the full stack: the four release binaries on
# the servers of scripts/infra.sh (a fresh database and topic each run), with
# the lag from acknowledgement to the ledger and the read model.
#
#   scripts/infra.sh up && bench/full-stack.sh [wallex-load options]
set -euo pipefail

ROOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT_DIR"
# shellcheck source=/dev/null # written by scripts/infra.sh up
source .infra/env

RUN="bench_$(date +%s)"
BIN="${BIN:-target/release}"
API_PORT=3200 RELAY_PORT=3201 LEDGER_PORT=3202 PROJECTION_PORT=3203
LOGS=".infra/$RUN"
# Operations of the load (after the wallets are created): the per-operation CPU divides by it.
OPERATIONS="${OPERATIONS:-20000}"
mkdir -p "$LOGS"
# command-api authenticates on a production backend; wallex-load mints its
# admin token from the same secret (it reads AUTH_JWT_SECRET too).
export AUTH_JWT_SECRET="${AUTH_JWT_SECRET:-bench-secret-of-at-least-32-bytes-$RUN}"

[ "${SKIP_BUILD:-0}" = 1 ] || cargo build --release --bins

psql "$DATABASE_URL" -qc "CREATE DATABASE $RUN"
BENCH_DATABASE_URL="${DATABASE_URL%/*}/$RUN"
scripts/infra.sh topic "$RUN" 10 >/dev/null
scripts/infra.sh topic "$RUN-dlq" 1 >/dev/null

pids=()
stop() {
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  psql "$DATABASE_URL" -qc "DROP DATABASE IF EXISTS $RUN WITH (FORCE)" || true
  scripts/infra.sh topic-delete "$RUN" >/dev/null || true
  scripts/infra.sh topic-delete "$RUN-dlq" >/dev/null || true
  curl -fs -X DELETE "$ELASTICSEARCH_URL/$RUN*" >/dev/null || true
}
trap stop EXIT

start() { # name port
  DATABASE_URL="$BENCH_DATABASE_URL" KAFKA_TOPIC="$RUN" KAFKA_DLQ_TOPIC="$RUN-dlq" \
    KAFKA_GROUP_ID="$RUN-$1" LEDGER_CONSUMER_GROUP="$RUN-ledger-consumer" \
    PROJECTION_CONSUMER_GROUP="$RUN-projection-consumer" \
    ELASTICSEARCH_INDEX_PREFIX="$RUN" REDIS_KEY_PREFIX="$RUN:lock:" HOST=127.0.0.1 PORT="$2" \
    RUST_LOG=warn "$BIN/$1" >"$LOGS/$1.log" 2>&1 &
  pids+=($!)
}
start command-api "$API_PORT"
start outbox-relay "$RELAY_PORT"
start ledger-consumer "$LEDGER_PORT"
start projection-consumer "$PROJECTION_PORT"

for port in "$API_PORT" "$RELAY_PORT" "$LEDGER_PORT" "$PROJECTION_PORT"; do
  for _ in $(seq 1 120); do
    curl -fs "http://127.0.0.1:$port/health" >/dev/null && break
    sleep 0.5
  done
done

# CPU seconds (user + kernel) so far of every process, summed by what it is.
cpu_by_process() {
  local stat_file pid command ticks name
  ticks="$(getconf CLK_TCK)"
  for stat_file in /proc/[0-9]*/stat; do
    pid="${stat_file#/proc/}"
    pid="${pid%/stat}"
    command="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || continue
    case "$command" in
      *org.opensearch*) name="opensearch" ;;
      *kafka.Kafka*) name="kafka" ;;
      postgres* | */bin/postgres*) name="postgresql" ;;
      redis-server* | */redis-server*) name="redis" ;;
      "$BIN/command-api"*) name="command-api" ;;
      "$BIN/outbox-relay"*) name="outbox-relay" ;;
      "$BIN/ledger-consumer"*) name="ledger-consumer" ;;
      "$BIN/projection-consumer"*) name="projection-consumer" ;;
      *) continue ;;
    esac
    # utime and stime are fields 14 and 15, counted after the parenthesised command name.
    awk -v name="$name" -v hz="$ticks" '{sub(/^.*\) /, ""); print name, ($12 + $13) / hz}' \
      "$stat_file" 2>/dev/null
  done | awk '{cpu[$1] += $2} END {for (name in cpu) print name, cpu[name]}' | sort
}

# Script calls Redis has served (the lock's takes and give-backs), then its
# connection checks (PING, UNWATCH: a pool's, before it hands a connection
# out), so far.
redis_calls() {
  redis-cli -u "$REDIS_URL" INFO commandstats |
    awk -F'[=,:]' '/^cmdstat_(evalsha|eval):/ {scripts += $3} /^cmdstat_(ping|unwatch):/ {checks += $3}
                   END {print scripts + 0, checks + 0}'
}

cpu_by_process >"$LOGS/cpu-before"
read -r scripts_before checks_before <<<"$(redis_calls)"
/usr/bin/time -f "wallex-load %U %S %e" -o "$LOGS/generator.time" \
  "$BIN/wallex-load" --url "http://127.0.0.1:$API_PORT" \
  --wallets 1000 --operations "$OPERATIONS" --workers 20 \
  --lag-metrics "ledger=http://127.0.0.1:$LEDGER_PORT/metrics" \
  --lag-metrics "projection-consumer=http://127.0.0.1:$PROJECTION_PORT/metrics" "$@"
{
  cpu_by_process
  awk '{print $1, $2 + $3}' "$LOGS/generator.time"
} | sort >"$LOGS/cpu-after"

read -r scripts_after checks_after <<<"$(redis_calls)"
wall_seconds="$(awk '{print $4}' "$LOGS/generator.time")"
awk -v calls="$((scripts_after - scripts_before))" -v checks="$((checks_after - checks_before))" \
  -v operations="$OPERATIONS" \
  'BEGIN {printf "== Redis lock: %d script calls, %.2f per operation; %d connection checks (PING, UNWATCH), %.2f per operation (the wallets'"'"' creation included)\n", calls, calls / operations, checks, checks / operations}'
echo "== CPU during the run (${wall_seconds} s, the wallets' creation included), by process: seconds, share of all cores, µs per operation =="
join -a 2 -e 0 -o 0,1.2,2.2 "$LOGS/cpu-before" "$LOGS/cpu-after" |
  awk -v wall="$wall_seconds" -v cores="$(nproc)" -v operations="$OPERATIONS" \
    '{cpu = $3 - $2; if ($1 != "wallex-load") total += cpu
      printf "%-22s %8.2f s %6.1f %% %8.0f µs/op\n", $1, cpu, cpu / (wall * cores) * 100, cpu / operations * 1e6}
     END {printf "%-22s %8.2f s %6.1f %% %8.0f µs/op\n", "all but the generator", total, total / (wall * cores) * 100, total / operations * 1e6}' 
