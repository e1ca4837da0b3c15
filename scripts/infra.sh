#!/usr/bin/env bash
# Real PostgreSQL, Redis, Apache Kafka (KRaft) and OpenSearch on 127.0.0.1, without Docker.
#
#   scripts/infra.sh up       install what is missing, start what is not running, wait until each answers
#   scripts/infra.sh down     stop the servers this script started (each pid file's whole
#                             process group, woken first should it be paused)
#   scripts/infra.sh status   say what runs, and where
#   scripts/infra.sh env      print the export lines (also kept in .infra/env)
#
# Faults, for the fault suite (crates/integration-tests/tests/faults) and for humans:
#   scripts/infra.sh kill NAME                     SIGKILL the server's whole process group
#   scripts/infra.sh start NAME                    start it again (on the port it had) and wait until it answers
#   scripts/infra.sh pause NAME | resume NAME      SIGSTOP | SIGCONT its process group (PostgreSQL:
#                                                  the postmaster and each of its processes, which
#                                                  run in process groups of their own)
#   scripts/infra.sh restart postgres fast|immediate   shut PostgreSQL down in that mode, start it again
# NAME is postgres, redis, kafka or opensearch. `kill postgres` is an immediate shutdown (the
# nearest PostgreSQL has to a crash that leaves it able to start again).
#
# PostgreSQL runs fast and unsafe by default (fsync, synchronous_commit, full_page_writes off:
# a crash may lose acknowledged commits). WALLEX_POSTGRES_DURABILITY=durable, read by `up`,
# `start postgres` and `restart postgres`, runs it with production durability (all three
# on); the choice is kept in .infra/postgres/durability for the next start.
#
# Data, logs and pid files live in .infra/ at the repository root. Downloads (Maven
# Central jars) are cached in ~/.cache/wallex-infra and ~/.m2 and reused across runs.
# PostgreSQL and Redis come from Debian packages (apt-get, only when missing).
set -euo pipefail

ROOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SCRIPT_DIR="$ROOT_DIR/scripts/infra"
INFRA_DIR="$ROOT_DIR/.infra"
CACHE_DIR="${WALLEX_INFRA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/wallex-infra}"
ENV_FILE="$INFRA_DIR/env"

KAFKA_VERSION="${WALLEX_KAFKA_VERSION:-4.1.1}"
OPENSEARCH_VERSION="${WALLEX_OPENSEARCH_VERSION:-2.19.6}"

DATABASE_NAME="wallex"
DATABASE_USER="wallex"
DATABASE_PASSWORD="wallex"
SERVICE_USER="wallex-infra" # runs OpenSearch, which refuses to run as root

POSTGRES_PORT_DEFAULT=15432
REDIS_PORT_DEFAULT=16379
KAFKA_PORT_DEFAULT=19092
KAFKA_CONTROLLER_PORT_DEFAULT=19093
OPENSEARCH_PORT_DEFAULT=19200
OPENSEARCH_TRANSPORT_PORT_DEFAULT=19300
PORT_FALLBACK_COUNT_MAX=50 # defaults below the ephemeral range 32768-60999; ports tried after a busy default: default+1 .. default+50

WAIT_POSTGRES_SECONDS_MAX=60
WAIT_REDIS_SECONDS_MAX=30
WAIT_KAFKA_SECONDS_MAX=120
WAIT_OPENSEARCH_SECONDS_MAX=180
WAIT_STOP_SECONDS_MAX=30
LOG_TAIL_LINES=40
POSTGRES_DURABILITY_DEFAULT="fast" # or "durable"

KAFKA_TOPIC="wallet-events"
KAFKA_TOPIC_PARTITIONS=10
KAFKA_DLQ_TOPIC="wallet-events-dlq"
KAFKA_DLQ_TOPIC_PARTITIONS=1
KAFKA_HEAP="-Xms256m -Xmx512m"
KAFKA_TOOL_HEAP="-Xms32m -Xmx256m"
OPENSEARCH_HEAP="-Xms512m -Xmx512m"

CLAIMED_PORTS=" "

log() { printf 'infra: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

is_root() { [[ "$(id -u)" == 0 ]]; }

# --- ports -------------------------------------------------------------------

port_is_free() {
  local port="$1"
  [[ "$CLAIMED_PORTS" != *" $port "* ]] || return 1
  if command -v ss >/dev/null 2>&1; then
    if ss -Htln "sport = :$port" 2>/dev/null | grep -q .; then
      return 1
    fi
  fi
  # A connection that succeeds means something already listens there.
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    return 1
  fi
  return 0
}

# Prints the default port if it is free, else the first free one above it.
choose_port() {
  local default="$1" offset port
  for ((offset = 0; offset <= PORT_FALLBACK_COUNT_MAX; offset++)); do
    port=$((default + offset))
    if port_is_free "$port"; then
      printf '%s\n' "$port"
      return 0
    fi
  done
  die "no free port in $default..$((default + PORT_FALLBACK_COUNT_MAX))"
}

claim_port() { CLAIMED_PORTS+="$1 "; }

# The port recorded in the file when it is free again (a server started again after a
# fault keeps its address, so .infra/env stays true), else choose_port of the default.
preferred_port() {
  local port_file="$1" default="$2" port
  if [[ -s "$port_file" ]]; then
    port="$(tr -d '[:space:]' <"$port_file")"
    if [[ "$port" =~ ^[0-9]+$ ]] && port_is_free "$port"; then
      printf '%s\n' "$port"
      return 0
    fi
  fi
  choose_port "$default"
}

# --- processes ---------------------------------------------------------------

pid_alive() {
  local pid_file="$1" pid
  [[ -s "$pid_file" ]] || return 1
  pid="$(head -n 1 "$pid_file" | tr -d '[:space:]')"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null
}

# What to signal for the pid in the file: its whole process group ("-PID") when the
# process leads one (started by start_detached, so the JVM under runuser is in it too),
# else the process alone. A group outlives its leader: the pid file names it still.
signal_target() {
  local pid_file="$1" pid pgid
  [[ -s "$pid_file" ]] || return 1
  pid="$(head -n 1 "$pid_file" | tr -d '[:space:]')"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  if kill -0 -- "-$pid" 2>/dev/null; then
    pgid="$(ps -o pgid= -p "$pid" 2>/dev/null | tr -d '[:space:]')"
    if [[ -z "$pgid" || "$pgid" == "$pid" ]]; then
      printf -- '-%s\n' "$pid"
      return 0
    fi
  fi
  kill -0 "$pid" 2>/dev/null || return 1
  printf '%s\n' "$pid"
}

# Wakes the process (group) of the pid file should it be stopped (SIGSTOP): a paused
# server neither answers nor ends on TERM until it runs again.
wake_pid_file() {
  local target
  target="$(signal_target "$1")" || return 0
  kill -CONT -- "$target" 2>/dev/null || true
}

# Sends TERM to the process group of the pid file (or its process), wakes it so the TERM
# is taken, waits for every member to end, then KILL as a last resort.
stop_pid_file() {
  local name="$1" pid_file="$2" target waited
  if ! target="$(signal_target "$pid_file")"; then
    rm -f "$pid_file"
    return 0
  fi
  log "stopping $name (${target/#-/process group })"
  kill -TERM -- "$target" 2>/dev/null || true
  kill -CONT -- "$target" 2>/dev/null || true
  for ((waited = 0; waited < WAIT_STOP_SECONDS_MAX; waited++)); do
    kill -0 -- "$target" 2>/dev/null || break
    sleep 1
  done
  if kill -0 -- "$target" 2>/dev/null; then
    log "$name did not stop in ${WAIT_STOP_SECONDS_MAX}s; killing it"
    kill -KILL -- "$target" 2>/dev/null || true
  fi
  rm -f "$pid_file"
}

# Before a start: a leader that died may have left members of its group running (a JVM
# under a killed runuser holds the node lock); they go, so the new server can start.
clear_leftovers() {
  local name="$1" pid_file="$2"
  pid_alive "$pid_file" && return 0
  if signal_target "$pid_file" >/dev/null; then
    log "$name left processes behind; stopping them first"
  fi
  stop_pid_file "$name" "$pid_file"
}

# Starts a command in its own session (it outlives this shell and its process group), with
# its output in a log file; the pid file holds the pid of the command itself (exec).
# Under runuser that pid is runuser's, which passes TERM on to the server and waits for it.
start_detached() {
  local pid_file="$1" log_file="$2"
  shift 2
  # shellcheck disable=SC2016 # expanded by the inner bash
  setsid bash -c 'printf "%s\n" "$$" >"$1"; shift; exec "$@"' start_detached "$pid_file" "$@" \
    >"$log_file" 2>&1 </dev/null &
  local waited
  for ((waited = 0; waited < 50; waited++)); do
    [[ -s "$pid_file" ]] && return 0
    sleep 0.1
  done
}

log_tail() {
  local name="$1"
  shift
  local file
  log "$name failed; last lines of its logs:"
  for file in "$@"; do
    if [[ -f "$file" ]]; then
      printf '%s\n' "----- $file" >&2
      tail -n "$LOG_TAIL_LINES" "$file" >&2 || true
    fi
  done
}

# Runs a command as the given user (or as ourselves when we are not root).
as_user() {
  local user="$1"
  shift
  if is_root; then
    runuser -u "$user" -- "$@"
  else
    "$@"
  fi
}

# A folder for a server that runs as another user: .infra/<name> when that user can reach
# it, else a folder under /tmp (the repository may sit in a home only root can enter),
# linked from .infra/<name> so everything is still found there.
service_dir() {
  local name="$1" user="$2" dir outside
  dir="$INFRA_DIR/$name"
  if [[ -L "$dir" ]]; then
    outside="$(readlink "$dir")"
    mkdir -p "$outside"
    printf '%s\n' "$outside"
    return 0
  fi
  mkdir -p "$dir"
  if ! is_root || runuser -u "$user" -- test -x "$dir" 2>/dev/null; then
    printf '%s\n' "$dir"
    return 0
  fi
  outside="/tmp/wallex-infra-$(printf '%s' "$ROOT_DIR" | sha256sum | cut -c1-12)/$name"
  mkdir -p "$outside"
  chmod 755 "$(dirname "$outside")"
  rmdir "$dir"
  ln -s "$outside" "$dir"
  printf '%s\n' "$outside"
}

# --- installs ----------------------------------------------------------------

APT_UPDATED=0
apt_install() {
  is_root || die "missing packages: $*; install them (apt-get install $*) or run as root"
  local apt_log="$INFRA_DIR/apt.log"
  mkdir -p "$INFRA_DIR"
  if [[ "$APT_UPDATED" == 0 ]]; then
    log "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >"$apt_log" 2>&1 || {
      cat "$apt_log" >&2
      die "apt-get update failed"
    }
    APT_UPDATED=1
  fi
  log "apt-get install $* (log in $apt_log)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >>"$apt_log" 2>&1 || {
    tail -n "$LOG_TAIL_LINES" "$apt_log" >&2
    die "apt-get install $* failed"
  }
}

postgres_bin_dir() {
  local dir
  dir="$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -type d -name bin 2>/dev/null | sort -V | tail -n 1)"
  [[ -n "$dir" && -x "$dir/initdb" ]] || return 1
  printf '%s\n' "$dir"
}

ensure_packages() {
  local missing=()
  postgres_bin_dir >/dev/null || missing+=(postgresql)
  command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
  command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null 2>&1 || missing+=(maven)
  if ((${#missing[@]} > 0)); then
    apt_install "${missing[@]}"
  fi
  # The Debian redis-server package starts its own service on 6379; we leave it alone.
}

ensure_service_user() {
  is_root || return 0
  if ! id -u "$SERVICE_USER" >/dev/null 2>&1; then
    log "creating system user $SERVICE_USER"
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$SERVICE_USER"
  fi
}

# mvn dependency:copy-dependencies of one of our poms into a folder, once.
maven_copy() {
  local pom="$1" out="$2"
  shift 2
  local tmp="$out.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  if ! mvn -B -q -f "$pom" dependency:copy-dependencies -DincludeScope=runtime \
    -DoutputDirectory="$tmp" "$@" >"$tmp.log" 2>&1; then
    cat "$tmp.log" >&2
    rm -rf "$tmp" "$tmp.log"
    die "maven could not resolve $pom $*"
  fi
  rm -f "$tmp.log"
  rm -rf "$out"
  mv "$tmp" "$out"
}

kafka_lib_dir() { printf '%s\n' "$CACHE_DIR/kafka-$KAFKA_VERSION/libs"; }

ensure_kafka_jars() {
  local libs
  libs="$(kafka_lib_dir)"
  [[ -f "$libs/.complete" ]] && return 0
  log "resolving Apache Kafka $KAFKA_VERSION jars with Maven (once)"
  maven_copy "$SCRIPT_DIR/kafka-pom.xml" "$libs" -Dkafka.version="$KAFKA_VERSION"
  touch "$libs/.complete"
}

opensearch_home() { printf '%s\n' "$CACHE_DIR/opensearch-$OPENSEARCH_VERSION"; }

# name|maven artifactId|plugin class|extended plugins
OPENSEARCH_MODULES=(
  "transport-netty4|transport-netty4-client|org.opensearch.transport.Netty4Plugin|"
  "lang-painless|lang-painless|org.opensearch.painless.PainlessPlugin|"
  "analysis-common|analysis-common|org.opensearch.analysis.common.CommonAnalysisPlugin|lang-painless"
)

write_plugin_descriptor() {
  local dir="$1" name="$2" classname="$3" extended="$4"
  cat >"$dir/plugin-descriptor.properties" <<EOF
# Written by scripts/infra.sh
description=$name module
version=$OPENSEARCH_VERSION
name=$name
classname=$classname
java.version=11
opensearch.version=$OPENSEARCH_VERSION
extended.plugins=$extended
has.native.controller=false
EOF
  # Modules of the distribution carry their own security policies; these are local test
  # servers, so each module gets every permission instead.
  cat >"$dir/plugin-security.policy" <<'EOF'
grant {
  permission java.security.AllPermission;
};
EOF
}

# The artifact name of a jar file: netty-codec-http-4.1.135.Final.jar -> netty-codec-http.
jar_artifact() { basename "$1" | sed -E 's/-[0-9]+\.[0-9]+.*\.jar$//; s/\.jar$//'; }

# Removes from a module folder the jars whose artifact the server (or the parent module)
# already has: a class twice on the class path is "jar hell" and stops the node.
remove_shared_jars() {
  local dir="$1" other="$2" jar have
  have=" "
  for jar in "$other"/*.jar; do
    [[ -e "$jar" ]] && have+="$(jar_artifact "$jar") "
  done
  for jar in "$dir"/*.jar; do
    [[ -e "$jar" ]] || continue
    if [[ "$have" == *" $(jar_artifact "$jar") "* ]]; then
      rm -f "$jar"
    fi
  done
}

ensure_opensearch_jars() {
  local home entry name artifact classname extended module_dir
  home="$(opensearch_home)"
  [[ -f "$home/.complete" ]] && return 0
  log "resolving OpenSearch $OPENSEARCH_VERSION jars with Maven (once)"
  rm -rf "$home"
  mkdir -p "$home/modules" "$home/plugins"
  # Jar names keep their versions: the server's security policy refers to its jars by them.
  maven_copy "$SCRIPT_DIR/opensearch-pom.xml" "$home/lib" \
    -Dopensearch.version="$OPENSEARCH_VERSION"
  for entry in "${OPENSEARCH_MODULES[@]}"; do
    IFS='|' read -r name artifact classname extended <<<"$entry"
    module_dir="$home/modules/$name"
    maven_copy "$SCRIPT_DIR/opensearch-pom.xml" "$module_dir" \
      -Dopensearch.version="$OPENSEARCH_VERSION" \
      -Dartifact.group=org.opensearch.plugin -Dartifact.id="$artifact"
    remove_shared_jars "$module_dir" "$home/lib"
    if [[ -n "$extended" ]]; then
      remove_shared_jars "$module_dir" "$home/modules/$extended"
    fi
    write_plugin_descriptor "$module_dir" "$name" "$classname" "$extended"
  done
  chmod -R a+rX "$home"
  date -u +%Y%m%dT%H%M%S.%N >"$home/.complete" # also tells the copies in .infra apart
}

# --- PostgreSQL --------------------------------------------------------------

PG_USER="postgres"
pg_dir() { service_dir postgres "$PG_USER"; }

postgres_running() { pid_alive "$INFRA_DIR/postgres/data/postmaster.pid"; }

postgres_psql() {
  local dir="$1" port="$2"
  shift 2
  as_user "$PG_USER" psql -h "$dir/run" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -qAt "$@"
}

# fast (the default) or durable: WALLEX_POSTGRES_DURABILITY, else the last start's choice.
postgres_durability() {
  local dir="$1" durability
  durability="${WALLEX_POSTGRES_DURABILITY:-}"
  if [[ -z "$durability" && -s "$dir/durability" ]]; then durability="$(cat "$dir/durability")"; fi
  durability="${durability:-$POSTGRES_DURABILITY_DEFAULT}"
  case "$durability" in
  fast | durable) printf '%s\n' "$durability" ;;
  *) die "WALLEX_POSTGRES_DURABILITY is fast or durable, not '$durability'" ;;
  esac
}

postgres_start() {
  local dir="$1" bin="$2" port="$3" durability switch
  durability="$(postgres_durability "$dir")"
  printf '%s\n' "$durability" >"$dir/durability"
  if [[ "$durability" == durable ]]; then switch=on; else switch=off; fi
  log "starting postgres on 127.0.0.1:$port ($durability: fsync, synchronous_commit, full_page_writes $switch)"
  as_user "$PG_USER" "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -s -o \
    "-p $port -c listen_addresses=127.0.0.1 -k $dir/run -c fsync=$switch -c synchronous_commit=$switch -c full_page_writes=$switch -c max_connections=200" \
    start || {
    log_tail postgres "$dir/postgres.log"
    exit 1
  }
}

postgres_up() {
  local dir bin port waited
  if ! is_root; then PG_USER="$(id -un)"; fi
  dir="$(pg_dir)"
  bin="$(postgres_bin_dir)"
  if postgres_running; then
    wake_pid_file "$dir/data/postmaster.pid"
    port="$(cat "$dir/port")"
    claim_port "$port"
    log "postgres already runs on 127.0.0.1:$port"
  else
    if [[ ! -f "$dir/data/PG_VERSION" ]]; then
      log "initdb in $dir/data"
      rm -rf "$dir/data"
      mkdir -p "$dir/data"
      if is_root; then chown -R "$PG_USER:" "$dir"; fi
      as_user "$PG_USER" "$bin/initdb" -D "$dir/data" -U postgres --auth-local=trust \
        --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
        {
          log_tail postgres "$dir/initdb.log"
          exit 1
        }
    fi
    mkdir -p "$dir/run"
    if is_root; then chown -R "$PG_USER:" "$dir"; fi
    port="$(preferred_port "$dir/port" "$POSTGRES_PORT_DEFAULT")"
    claim_port "$port"
    printf '%s\n' "$port" >"$dir/port"
    postgres_start "$dir" "$bin" "$port"
  fi
  for ((waited = 0; ; waited++)); do
    if postgres_psql "$dir" "$port" -c 'select 1' >/dev/null 2>&1; then break; fi
    if ((waited >= WAIT_POSTGRES_SECONDS_MAX)); then
      log_tail postgres "$dir/postgres.log"
      die "postgres did not answer 'select 1' within ${WAIT_POSTGRES_SECONDS_MAX}s"
    fi
    sleep 1
  done
  if [[ "$(postgres_psql "$dir" "$port" -c "select count(*) from pg_roles where rolname = '$DATABASE_USER'")" == 0 ]]; then
    postgres_psql "$dir" "$port" -c "create role $DATABASE_USER login createdb password '$DATABASE_PASSWORD'"
  fi
  # Tests drop their databases WITH (FORCE), which must also end an autovacuum worker
  # running there: that takes pg_signal_backend (idempotent).
  postgres_psql "$dir" "$port" -c "grant pg_signal_backend to $DATABASE_USER" >/dev/null
  if [[ "$(postgres_psql "$dir" "$port" -c "select count(*) from pg_database where datname = '$DATABASE_NAME'")" == 0 ]]; then
    postgres_psql "$dir" "$port" -c "create database $DATABASE_NAME owner $DATABASE_USER"
  fi
  # The real request, over TCP with the password, as the services will connect.
  PGPASSWORD="$DATABASE_PASSWORD" psql -h 127.0.0.1 -p "$port" -U "$DATABASE_USER" -d "$DATABASE_NAME" \
    -qAt -c 'select 1' >/dev/null || {
    log_tail postgres "$dir/postgres.log"
    die "postgres does not accept $DATABASE_USER over TCP"
  }
  POSTGRES_PORT="$port"
}

postgres_down() {
  local dir bin
  [[ -e "$INFRA_DIR/postgres" ]] || return 0
  dir="$(readlink -f "$INFRA_DIR/postgres")"
  if postgres_running; then
    bin="$(postgres_bin_dir)"
    log "stopping postgres"
    if is_root; then PG_USER="$(stat -c %U "$dir/data")"; else PG_USER="$(id -un)"; fi
    as_user "$PG_USER" "$bin/pg_ctl" -D "$dir/data" -m fast -s -t "$WAIT_STOP_SECONDS_MAX" stop ||
      stop_pid_file postgres "$dir/data/postmaster.pid"
  fi
}

# --- Redis -------------------------------------------------------------------

redis_up() {
  local dir="$INFRA_DIR/redis" port waited
  mkdir -p "$dir"
  if pid_alive "$dir/redis.pid"; then
    wake_pid_file "$dir/redis.pid"
    port="$(cat "$dir/port")"
    claim_port "$port"
    log "redis already runs on 127.0.0.1:$port"
  else
    clear_leftovers redis "$dir/redis.pid"
    port="$(preferred_port "$dir/port" "$REDIS_PORT_DEFAULT")"
    claim_port "$port"
    printf '%s\n' "$port" >"$dir/port"
    log "starting redis on 127.0.0.1:$port"
    redis-server --bind 127.0.0.1 --port "$port" --daemonize yes --pidfile "$dir/redis.pid" \
      --logfile "$dir/redis.log" --dir "$dir" --save "" --appendonly no >/dev/null || {
      log_tail redis "$dir/redis.log"
      exit 1
    }
  fi
  for ((waited = 0; ; waited++)); do
    if [[ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" == PONG ]]; then break; fi
    if ((waited >= WAIT_REDIS_SECONDS_MAX)); then
      log_tail redis "$dir/redis.log"
      die "redis did not answer PING within ${WAIT_REDIS_SECONDS_MAX}s"
    fi
    sleep 1
  done
  REDIS_PORT="$port"
}

redis_down() { stop_pid_file redis "$INFRA_DIR/redis/redis.pid"; }

# --- Kafka -------------------------------------------------------------------

# Runs a Kafka command-line tool (storage format, topic requests). Its own log
# goes to logs/tools.log through tools-log4j2.properties, never into the broker's
# server.log, which must survive a readiness probe for diagnosis after a fault.
kafka_java() {
  local dir="$1" heap="$2"
  shift 2
  # shellcheck disable=SC2086 # the heap options are several words
  java $heap -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$dir/tools-log4j2.properties" -Dkafka.logs.dir="$dir/logs" \
    -cp "$(kafka_lib_dir)/*" "$@"
}

kafka_write_config() {
  local dir="$1" port="$2" controller_port="$3"
  cat >"$dir/server.properties" <<EOF
# Written by scripts/infra.sh: one combined broker + controller (KRaft), on 127.0.0.1.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
log.dirs=$dir/data
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
log.retention.hours=24
EOF
  cat >"$dir/log4j2.properties" <<'EOF'
# Written by scripts/infra.sh
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = ${sys:kafka.logs.dir}/server.log
appender.file.append = true
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
EOF
  cat >"$dir/tools-log4j2.properties" <<'EOF'
# Written by scripts/infra.sh: the command-line tools log apart from the broker.
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = ${sys:kafka.logs.dir}/tools.log
appender.file.append = true
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.file.ref = file
EOF
}

# Kafka 4 has TopicCommand in org.apache.kafka.tools; older versions had it in kafka.admin.
kafka_topic_class() {
  if unzip -l "$(kafka_lib_dir)/kafka-tools-$KAFKA_VERSION.jar" \
    'org/apache/kafka/tools/TopicCommand.class' >/dev/null 2>&1; then
    printf '%s\n' org.apache.kafka.tools.TopicCommand
  else
    printf '%s\n' kafka.admin.TopicCommand
  fi
}

kafka_topic_command() {
  local dir="$1" port="$2"
  shift 2
  kafka_java "$dir" "$KAFKA_TOOL_HEAP" "$KAFKA_TOPIC_CLASS" --bootstrap-server "127.0.0.1:$port" "$@"
}

# Starts the broker unless it runs; kafka_wait then waits for it.
kafka_start() {
  local dir="$INFRA_DIR/kafka" port controller_port cluster_id
  mkdir -p "$dir/logs"
  if pid_alive "$dir/kafka.pid"; then
    wake_pid_file "$dir/kafka.pid"
    port="$(cat "$dir/port")"
    claim_port "$port"
    log "kafka already runs on 127.0.0.1:$port"
  else
    clear_leftovers kafka "$dir/kafka.pid"
    port="$(preferred_port "$dir/port" "$KAFKA_PORT_DEFAULT")"
    claim_port "$port"
    controller_port="$(preferred_port "$dir/controller-port" "$KAFKA_CONTROLLER_PORT_DEFAULT")"
    claim_port "$controller_port"
    printf '%s\n' "$port" >"$dir/port"
    printf '%s\n' "$controller_port" >"$dir/controller-port"
    kafka_write_config "$dir" "$port" "$controller_port"
    if [[ ! -f "$dir/data/meta.properties" ]]; then
      rm -rf "$dir/data"
      cluster_id="$(kafka_java "$dir" "$KAFKA_TOOL_HEAP" kafka.tools.StorageTool random-uuid)"
      log "formatting kafka storage (cluster $cluster_id)"
      kafka_java "$dir" "$KAFKA_TOOL_HEAP" kafka.tools.StorageTool format -t "$cluster_id" \
        -c "$dir/server.properties" >"$dir/logs/format.log" 2>&1 || {
        log_tail kafka "$dir/logs/format.log"
        exit 1
      }
    fi
    log "starting kafka $KAFKA_VERSION on 127.0.0.1:$port (controller $controller_port)"
    # shellcheck disable=SC2086 # the heap options are several words
    start_detached "$dir/kafka.pid" "$dir/logs/stdout.log" \
      java $KAFKA_HEAP -XX:+UseG1GC -Djava.awt.headless=true \
      -Dlog4j2.configurationFile="$dir/log4j2.properties" -Dkafka.logs.dir="$dir/logs" \
      -cp "$(kafka_lib_dir)/*" kafka.Kafka "$dir/server.properties"
  fi
  KAFKA_PORT="$port"
}

# Waits for the broker, then makes the real requests.
kafka_wait() {
  local dir="$INFRA_DIR/kafka" port="$KAFKA_PORT" waited topics
  for ((waited = 0; ; waited++)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    if ((waited >= WAIT_KAFKA_SECONDS_MAX)) || ! pid_alive "$dir/kafka.pid"; then
      log_tail kafka "$dir/logs/stdout.log" "$dir/logs/server.log"
      die "kafka did not listen on $port within ${WAIT_KAFKA_SECONDS_MAX}s"
    fi
    sleep 1
  done
  # The real requests: create the topics (idempotent) and read the topic list back.
  KAFKA_TOPIC_CLASS="$(kafka_topic_class)"
  if ! kafka_topic_command "$dir" "$port" --create --if-not-exists --topic "$KAFKA_TOPIC" \
    --partitions "$KAFKA_TOPIC_PARTITIONS" --replication-factor 1 >>"$dir/logs/topics.log" 2>&1 ||
    ! kafka_topic_command "$dir" "$port" --create --if-not-exists --topic "$KAFKA_DLQ_TOPIC" \
      --partitions "$KAFKA_DLQ_TOPIC_PARTITIONS" --replication-factor 1 \
      --config retention.ms=-1 --config retention.bytes=-1 >>"$dir/logs/topics.log" 2>&1 ||
    ! topics="$(kafka_topic_command "$dir" "$port" --list 2>>"$dir/logs/topics.log")"; then
    log_tail kafka "$dir/logs/topics.log" "$dir/logs/server.log"
    die "kafka did not answer the topic requests"
  fi
  if ! grep -qx "$KAFKA_TOPIC" <<<"$topics" || ! grep -qx "$KAFKA_DLQ_TOPIC" <<<"$topics"; then
    log_tail kafka "$dir/logs/topics.log"
    die "kafka lacks the topics $KAFKA_TOPIC and $KAFKA_DLQ_TOPIC"
  fi
  KAFKA_PORT="$port"
}

kafka_down() { stop_pid_file kafka "$INFRA_DIR/kafka/kafka.pid"; }

# --- OpenSearch --------------------------------------------------------------

opensearch_user() { if is_root; then printf '%s\n' "$SERVICE_USER"; else id -un; fi; }

opensearch_write_config() {
  local dir="$1" port="$2" transport_port="$3"
  mkdir -p "$dir/config" "$dir/data" "$dir/logs" "$dir/tmp"
  cat >"$dir/config/opensearch.yml" <<EOF
# Written by scripts/infra.sh: one local node, no security plugin.
cluster.name: wallex-infra
node.name: wallex-infra-1
path.data: $dir/data
path.logs: $dir/logs
network.host: 127.0.0.1
http.port: $port
transport.port: $transport_port
discovery.type: single-node
cluster.routing.allocation.disk.threshold_enabled: false
action.auto_create_index: true
EOF
  cat >"$dir/config/log4j2.properties" <<'EOF'
# Written by scripts/infra.sh
status = error
appender.file.type = File
appender.file.name = file
appender.file.fileName = ${sys:opensearch.logs.base_path}${sys:file.separator}${sys:opensearch.logs.cluster_name}.log
appender.file.append = false
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d{ISO8601}][%-5p][%-25c{1.}] [%node_name]%marker %m%n
rootLogger.level = info
rootLogger.appenderRef.file.ref = file
EOF
  touch "$dir/config/jvm.options"
}

opensearch_health() {
  curl -fsS --max-time 5 "http://127.0.0.1:$1/_cluster/health?wait_for_status=yellow&timeout=5s" 2>/dev/null
}

# Starts the node unless it runs; opensearch_wait then waits for it.
opensearch_start() {
  local dir port transport_port user home
  user="$(opensearch_user)"
  dir="$(service_dir opensearch "$user")"
  home="$(opensearch_home)"
  if pid_alive "$dir/launcher.pid"; then
    wake_pid_file "$dir/launcher.pid"
    port="$(cat "$dir/port")"
    claim_port "$port"
    log "opensearch already runs on 127.0.0.1:$port"
  else
    clear_leftovers opensearch "$dir/launcher.pid"
    port="$(preferred_port "$dir/port" "$OPENSEARCH_PORT_DEFAULT")"
    claim_port "$port"
    transport_port="$(preferred_port "$dir/transport-port" "$OPENSEARCH_TRANSPORT_PORT_DEFAULT")"
    claim_port "$transport_port"
    printf '%s\n' "$transport_port" >"$dir/transport-port"
    opensearch_write_config "$dir" "$port" "$transport_port"
    printf '%s\n' "$port" >"$dir/port"
    # The node reads lib/ and modules/ from a home its user can enter, which ~/.cache may
    # not be: hard links (or a copy) of the cached home in .infra.
    if ! cmp -s "$home/.complete" "$dir/home/.complete"; then
      rm -rf "${dir:?}/home"
      cp -al "$home" "$dir/home" 2>/dev/null || cp -a "$home" "$dir/home"
    fi
    if is_root; then chown -R "$user:" "$dir"; fi
    log "starting opensearch $OPENSEARCH_VERSION on 127.0.0.1:$port (transport $transport_port)"
    # shellcheck disable=SC2086 # the heap options are several words
    start_detached "$dir/launcher.pid" "$dir/logs/stdout.log" \
      "${RUNUSER[@]}" java $OPENSEARCH_HEAP -XX:+UseG1GC -Djava.awt.headless=true \
      -Dfile.encoding=UTF-8 -Djna.nosys=true -Dio.netty.noUnsafe=true -Dio.netty.noKeySetOptimization=true \
      -Dlog4j.shutdownHookEnabled=false -Dlog4j2.disable.jmx=true -Djava.locale.providers=SPI,COMPAT \
      -Djava.io.tmpdir="$dir/tmp" -XX:-HeapDumpOnOutOfMemoryError \
      -Dopensearch.path.home="$dir/home" -Dopensearch.path.conf="$dir/config" \
      -Dopensearch.distribution.type=tar -Dopensearch.bundled_jdk=false \
      -cp "$dir/home/lib/*" org.opensearch.bootstrap.OpenSearch
  fi
  OPENSEARCH_DIR="$dir"
  OPENSEARCH_PORT="$port"
}

opensearch_wait() {
  local dir="$OPENSEARCH_DIR" port="$OPENSEARCH_PORT" waited health
  for ((waited = 0; ; waited++)); do
    if health="$(opensearch_health "$port")"; then break; fi
    if ((waited >= WAIT_OPENSEARCH_SECONDS_MAX)) || ! pid_alive "$dir/launcher.pid"; then
      log_tail opensearch "$dir/logs/stdout.log" "$dir/logs/wallex-infra.log"
      die "opensearch did not answer GET /_cluster/health within ${WAIT_OPENSEARCH_SECONDS_MAX}s"
    fi
    sleep 1
  done
  log "opensearch health: $health"
  OPENSEARCH_PORT="$port"
}

opensearch_down() {
  [[ -e "$INFRA_DIR/opensearch" ]] || return 0
  stop_pid_file opensearch "$(readlink -f "$INFRA_DIR/opensearch")/launcher.pid"
}

# --- commands ----------------------------------------------------------------

write_env() {
  mkdir -p "$INFRA_DIR"
  cat >"$ENV_FILE.tmp" <<EOF
export DATABASE_URL=postgres://$DATABASE_USER:$DATABASE_PASSWORD@127.0.0.1:$POSTGRES_PORT/$DATABASE_NAME
export REDIS_URL=redis://127.0.0.1:$REDIS_PORT
export KAFKA_BROKERS=127.0.0.1:$KAFKA_PORT
export ELASTICSEARCH_URL=http://127.0.0.1:$OPENSEARCH_PORT
EOF
  mv "$ENV_FILE.tmp" "$ENV_FILE"
}

cmd_up() {
  local started
  started="$(date +%s)"
  mkdir -p "$INFRA_DIR" "$CACHE_DIR"
  ensure_packages
  command -v curl >/dev/null 2>&1 || apt_install curl
  command -v unzip >/dev/null 2>&1 || apt_install unzip
  ensure_service_user
  ensure_kafka_jars
  ensure_opensearch_jars
  if is_root; then RUNUSER=(runuser -u "$SERVICE_USER" --); else RUNUSER=(); fi
  postgres_up
  redis_up
  # The two JVMs boot side by side.
  kafka_start
  opensearch_start
  kafka_wait
  opensearch_wait
  write_env
  log "all servers answer ($(($(date +%s) - started))s); environment in $ENV_FILE"
  cat "$ENV_FILE"
}

cmd_down() {
  opensearch_down
  kafka_down
  redis_down
  postgres_down
  rm -f "$ENV_FILE"
  log "stopped"
}

status_line() {
  local name="$1" pid_file="$2" port_file="$3"
  if pid_alive "$pid_file"; then
    printf '%-11s running  127.0.0.1:%s  pid %s\n' "$name" "$(cat "$port_file" 2>/dev/null || echo '?')" \
      "$(head -n 1 "$pid_file" | tr -d '[:space:]')"
  else
    printf '%-11s stopped\n' "$name"
  fi
}

cmd_status() {
  local pg="$INFRA_DIR/postgres" os="$INFRA_DIR/opensearch"
  status_line postgres "$pg/data/postmaster.pid" "$pg/port"
  status_line redis "$INFRA_DIR/redis/redis.pid" "$INFRA_DIR/redis/port"
  status_line kafka "$INFRA_DIR/kafka/kafka.pid" "$INFRA_DIR/kafka/port"
  status_line opensearch "$os/launcher.pid" "$os/port"
}

cmd_env() {
  [[ -f "$ENV_FILE" ]] || die "no $ENV_FILE: run scripts/infra.sh up first"
  cat "$ENV_FILE"
}

# A topic beside wallet-events, for benchmarks and tests that want their own.
cmd_topic() {
  local name="${1:-}" partitions="${2:-$KAFKA_TOPIC_PARTITIONS}" dir="$INFRA_DIR/kafka"
  [[ -n "$name" ]] || die "usage: scripts/infra.sh topic NAME [PARTITIONS]"
  pid_alive "$dir/kafka.pid" || die "kafka is not running: scripts/infra.sh up first"
  KAFKA_TOPIC_CLASS="$(kafka_topic_class)"
  kafka_topic_command "$dir" "$(cat "$dir/port")" --create --if-not-exists --topic "$name" \
    --partitions "$partitions" --replication-factor 1
}

# Deletes a topic made by `topic` (a benchmark's, once it is done).
cmd_topic_delete() {
  local name="${1:-}" dir="$INFRA_DIR/kafka"
  [[ -n "$name" ]] || die "usage: scripts/infra.sh topic-delete NAME"
  pid_alive "$dir/kafka.pid" || die "kafka is not running: scripts/infra.sh up first"
  KAFKA_TOPIC_CLASS="$(kafka_topic_class)"
  kafka_topic_command "$dir" "$(cat "$dir/port")" --delete --if-exists --topic "$name"
}

# --- faults ------------------------------------------------------------------

# The pid file of a server started by `up` (its process group is signalled).
server_pid_file() {
  case "$1" in
  redis) printf '%s\n' "$INFRA_DIR/redis/redis.pid" ;;
  kafka) printf '%s\n' "$INFRA_DIR/kafka/kafka.pid" ;;
  opensearch) printf '%s\n' "$(readlink -f "$INFRA_DIR/opensearch")/launcher.pid" ;;
  *) die "NAME is postgres, redis, kafka or opensearch, not '$1'" ;;
  esac
}

# SIGSTOP or SIGCONT to PostgreSQL: the postmaster first (it forks no new process while
# stopped), then each of its processes. Each runs in a process group of its own, so the
# postmaster's group alone would leave the sessions serving.
postgres_signal() {
  local signal="$1" postmaster children
  postgres_running || die "postgres is not running"
  postmaster="$(head -n 1 "$INFRA_DIR/postgres/data/postmaster.pid" | tr -d '[:space:]')"
  log "postgres: SIG$signal to the postmaster $postmaster and its processes"
  kill "-$signal" "$postmaster"
  children="$(pgrep -P "$postmaster" || true)"
  [[ -z "$children" ]] || kill "-$signal" $children 2>/dev/null || true
}

# Sends a signal to the server's process group; KILL also waits until every member is gone.
signal_server() {
  local name="$1" signal="$2" pid_file target waited
  if [[ "$name" == postgres && "$signal" != KILL ]]; then
    postgres_signal "$signal"
    return 0
  fi
  pid_file="$(server_pid_file "$name")"
  target="$(signal_target "$pid_file")" || die "$name is not running"
  log "$name: SIG$signal to ${target/#-/process group }"
  kill "-$signal" -- "$target"
  [[ "$signal" == KILL ]] || return 0
  for ((waited = 0; waited < WAIT_STOP_SECONDS_MAX * 10; waited++)); do
    kill -0 -- "$target" 2>/dev/null || break
    sleep 0.1
  done
  rm -f "$pid_file"
}

# kill -9 of a whole server; PostgreSQL's nearest crash is an immediate shutdown.
cmd_kill() {
  local name="${1:-}"
  if [[ "$name" == postgres ]]; then
    postgres_stop immediate
    return 0
  fi
  signal_server "$name" KILL
}

# Starts one server again (on the port it had, when free) and waits until it answers.
cmd_start() {
  local name="${1:-}"
  mkdir -p "$INFRA_DIR"
  if is_root; then RUNUSER=(runuser -u "$SERVICE_USER" --); else RUNUSER=(); fi
  case "$name" in
  postgres) postgres_up ;;
  redis) redis_up ;;
  kafka) kafka_start && kafka_wait ;;
  opensearch) opensearch_start && opensearch_wait ;;
  *) die "usage: scripts/infra.sh start postgres|redis|kafka|opensearch" ;;
  esac
  log "$name answers"
}

postgres_stop() {
  local mode="$1" dir bin
  dir="$(readlink -f "$INFRA_DIR/postgres")"
  postgres_running || die "postgres is not running"
  bin="$(postgres_bin_dir)"
  if is_root; then PG_USER="$(stat -c %U "$dir/data")"; else PG_USER="$(id -un)"; fi
  log "postgres: $mode shutdown"
  as_user "$PG_USER" "$bin/pg_ctl" -D "$dir/data" -m "$mode" -s -t "$WAIT_STOP_SECONDS_MAX" stop
}

# `restart postgres fast|immediate`: the shutdown a failover or a crash brings, then a start.
cmd_restart() {
  local name="${1:-}" mode="${2:-}"
  [[ "$name" == postgres && ("$mode" == fast || "$mode" == immediate) ]] ||
    die "usage: scripts/infra.sh restart postgres fast|immediate"
  postgres_stop "$mode"
  cmd_start postgres
}

main() {
  case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) cmd_env ;;
  topic) cmd_topic "${@:2}" ;;
  topic-delete) cmd_topic_delete "${@:2}" ;;
  kill) cmd_kill "${@:2}" ;;
  start) cmd_start "${@:2}" ;;
  pause) signal_server "${2:-}" STOP ;;
  resume) signal_server "${2:-}" CONT ;;
  restart) cmd_restart "${@:2}" ;;
  *)
    printf 'usage: %s up|down|status|env|topic NAME [PARTITIONS]|topic-delete NAME|kill NAME|start NAME|pause NAME|resume NAME|restart postgres fast|immediate\n' "$0" >&2
    exit 2
    ;;
  esac
}

main "$@"
