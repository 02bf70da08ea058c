#!/usr/bin/env bash
# kafka-local.sh — a real, single-node Apache Kafka broker (KRaft mode) for the
# integration tests, built from the broker jars published on Maven Central.
#
# Why this exists: the integration tests must run against a real broker (no
# mocks: transactions, read_committed and consumer groups are exactly what we
# need to prove), but the dev machines and CI have no Docker and can only reach
# package registries. Maven Central carries the broker itself
# (org.apache.kafka:kafka_2.13), so Maven resolves it plus its runtime
# dependencies and we launch `kafka.Kafka` straight off that classpath.
#
# Which Kafka: the newest 4.x by default; 3.9.1+ with KAFKA_VERSION=3.9.2 (CI runs
# the broker tests on both). kafkajs 2.2.4 works with 4.x: every API version it sends
# (Produce v7, Fetch v11, JoinGroup v5, InitProducerId v1, ...) is inside 4.x's
# supported ranges, which KIP-896 only trimmed below those. The services check this at
# start-up against the broker's ApiVersions answer (src/kafka/api-versions.ts).
# Not 3.9.0 or older: before 3.9.1 a transaction could complete before its consumer
# offsets were readable (KAFKA-17507), so a reader of the offsets right after fencing
# the previous owner (a resumed replay into topics; the labeler keeps its own copy in
# the changelog) could get the older ones and write that owner's last transaction twice.
#
# Usage:
#   scripts/kafka-local.sh fetch                       # download into the cache (idempotent)
#   scripts/kafka-local.sh start [--dir DIR] [--port PORT] [--secured]
#   scripts/kafka-local.sh stop  [--dir DIR]
#   scripts/kafka-local.sh status [--dir DIR]
#
# `start` prints KEY=VALUE lines on stdout (everything else goes to stderr), so
#   eval "$(scripts/kafka-local.sh start)"   # sets KAFKA_BROKERS and KAFKA_LOCAL_DIR
# works. `stop`/`status` without --dir use $KAFKA_LOCAL_DIR, else the broker
# most recently started by this script. `--secured`: SASL_SSL, SCRAM users and ACLs
# enforced, see scripts/kafka-secured.sh (prints KAFKA_SECURED_* instead of KAFKA_BROKERS).
#
# Environment:
#   RANKDISTILL_CACHE   cache root (default ~/.cache/rankdistill)
#   KAFKA_VERSION       pin a broker version (3.9.1 or newer) instead of the newest
#                       cached/available one of KAFKA_CANDIDATES (4.x)
#   KAFKA_HEAP_OPTS     JVM heap flags (default -Xms128m -Xmx512m)
set -euo pipefail

# Newest first. The first one already in the cache wins (no network needed);
# otherwise the first one Maven Central actually has is downloaded.
KAFKA_CANDIDATES=(4.4.0 4.3.0 4.2.0 4.1.1 4.0.1)
SCALA_BINARY=2.13
# The broker jars only depend on slf4j-api, so without a backend it would log nothing.
# Kafka 4.x's own distribution logs through slf4j 1.7 -> log4j2 (and its dynamic
# log-level API, LoggingController, needs log4j-core); 3.9 through slf4j 1.7 -> reload4j
# (log4j 1.x API). write_pom/java_opts pick the pair for the major version.
SLF4J_VERSION=1.7.36
RELOAD4J_VERSION=1.2.25
LOG4J2_VERSION=2.24.3
# Pinned so a fresh ~/.m2 resolves the same plugin everywhere (not "latest").
DEPENDENCY_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.8.1

CACHE_ROOT="${RANKDISTILL_CACHE:-$HOME/.cache/rankdistill}"
CURRENT_FILE="$CACHE_ROOT/kafka-current-dir" # where the last started broker lives
DIR_MARKER=".rankdistill-kafka"               # only dirs carrying this are ever deleted
READY_TIMEOUT_S=90
STOP_TIMEOUT_S=20

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

log() { printf '[kafka-local] %s\n' "$*" >&2; }
die() { printf '[kafka-local] ERROR: %s\n' "$*" >&2; exit 1; }

require_java() {
  command -v java >/dev/null 2>&1 ||
    die "Java 17+ is required to run the local Kafka broker (or set KAFKA_BROKERS to an existing cluster)"
  local spec
  spec="$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.specification\.version = //p')"
  # "1.8" style versions are < 17 as well; only a plain integer >= 17 passes.
  if ! [[ "$spec" =~ ^[0-9]+$ ]] || ((spec < 17)); then
    die "Java 17+ is required to run the local Kafka broker (or set KAFKA_BROKERS to an existing cluster); found java ${spec:-unknown}"
  fi
}

require_node() {
  command -v node >/dev/null 2>&1 || die "node is required (port picking and the readiness check use it)"
}

# ---------------------------------------------------------------- fetch ----

libs_dir() { echo "$CACHE_ROOT/kafka-$1/libs"; }
is_complete() { [[ -f "$(libs_dir "$1")/.complete" ]]; }

# A throwaway project whose only purpose is to make Maven resolve the broker's
# runtime classpath. Everything the KRaft broker needs (kafka-server,
# kafka-metadata, kafka-raft, kafka-storage, group/transaction coordinators,
# jackson, scala, ...) is a runtime dependency of kafka_2.13 itself; only the
# logging backend has to be added.
write_pom() {
  local version="$1" dest="$2"
  cat >"$dest" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>rankdistill.local</groupId>
  <artifactId>kafka-broker-classpath</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_${SCALA_BINARY}</artifactId>
      <version>${version}</version>
    </dependency>
$(logging_dependencies "$version")
  </dependencies>
</project>
EOF
}

# 4.x logs through log4j2, 3.x through log4j 1.x (reload4j).
uses_log4j2() { [[ "${1%%.*}" -ge 4 ]]; }

logging_dependencies() {
  if uses_log4j2 "$1"; then
    cat <<EOF
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>${LOG4J2_VERSION}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-core</artifactId>
      <version>${LOG4J2_VERSION}</version>
    </dependency>
EOF
  else
    cat <<EOF
    <dependency>
      <groupId>org.slf4j</groupId>
      <artifactId>slf4j-reload4j</artifactId>
      <version>${SLF4J_VERSION}</version>
    </dependency>
    <dependency>
      <groupId>ch.qos.reload4j</groupId>
      <artifactId>reload4j</artifactId>
      <version>${RELOAD4J_VERSION}</version>
    </dependency>
EOF
  fi
}

# Downloads one version into its cache folder. Returns 2 when Maven Central
# does not have that version (caller tries the next candidate); any other Maven
# failure is fatal and its output is shown.
download_version() {
  local version="$1" target work out
  target="$(libs_dir "$version")"
  work="$(mktemp -d "${TMPDIR:-/tmp}/rankdistill-kafka-fetch.XXXXXX")"
  write_pom "$version" "$work/pom.xml"
  log "fetching org.apache.kafka:kafka_${SCALA_BINARY}:${version} and its runtime dependencies (Maven Central)..."
  if ! out="$(cd "$work" && mvn -B -q -ntp -Dstyle.color=never \
    "$DEPENDENCY_PLUGIN:copy-dependencies" \
    -DoutputDirectory="$work/libs" -DincludeScope=runtime 2>&1)"; then
    if grep -q "kafka_${SCALA_BINARY}:jar:${version}" <<<"$out" &&
      grep -qiE "could not find artifact|was not found" <<<"$out"; then
      log "kafka ${version} is not on Maven Central, trying an older one"
      rm -rf "$work"
      return 2
    fi
    printf '%s\n' "$out" >&2
    rm -rf "$work"
    die "mvn failed to fetch Kafka ${version} (see the Maven output above); no broker was started"
  fi
  # Sanity check: the broker main class must really be on this classpath.
  ls "$work/libs/kafka_${SCALA_BINARY}-${version}.jar" >/dev/null 2>&1 ||
    die "mvn finished but kafka_${SCALA_BINARY}-${version}.jar is missing from $work/libs"
  # Publish atomically-ish: move the full folder in place, marker written last,
  # so an interrupted fetch is never mistaken for a complete one.
  # (explicit `|| die`: this function runs under `||`, where set -e is off)
  mkdir -p "$(dirname "$target")" || die "cannot create $(dirname "$target")"
  rm -rf "$target"
  mv "$work/libs" "$target" || die "cannot move the jars into $target"
  cp "$work/pom.xml" "$(dirname "$target")/pom.xml" # kept to show what was resolved
  rm -rf "$work"
  date -u +%Y-%m-%dT%H:%M:%SZ >"$target/.complete" || die "cannot write $target/.complete"
  log "kafka ${version}: $(find "$target" -name '*.jar' | wc -l) jars in $target"
}

# 3.9.1 or newer (major.minor.patch compared as numbers).
supported_version() {
  local major minor patch
  IFS=. read -r major minor patch <<<"$1"
  [[ "$major" =~ ^[0-9]+$ && "$minor" =~ ^[0-9]+$ && "${patch:-0}" =~ ^[0-9]+$ ]] || return 1
  ((major > 3 || (major == 3 && (minor > 9 || (minor == 9 && ${patch:-0} >= 1)))))
}

# Sets KAFKA_VERSION and KAFKA_LIBS. Serialised with flock so two concurrent
# `start`s on a fresh machine do not download into the same folder at once.
fetch_kafka() {
  command -v mvn >/dev/null 2>&1 || {
    # mvn is only needed when the cache is cold.
    local v
    for v in ${KAFKA_VERSION:-${KAFKA_CANDIDATES[*]}}; do
      if is_complete "$v"; then KAFKA_VERSION="$v" && KAFKA_LIBS="$(libs_dir "$v")" && return 0; fi
    done
    die "Maven (mvn) is required to fetch the Kafka broker from Maven Central"
  }
  mkdir -p "$CACHE_ROOT"
  exec 9>"$CACHE_ROOT/.kafka-fetch.lock"
  flock 9

  local candidates=("${KAFKA_CANDIDATES[@]}") v rc
  if [[ -n "${KAFKA_VERSION:-}" ]]; then
    supported_version "$KAFKA_VERSION" ||
      die "KAFKA_VERSION=$KAFKA_VERSION is not supported: 3.9.1 or newer (KAFKA-17507, see the header)"
    candidates=("$KAFKA_VERSION")
  fi
  # 1) anything already cached: no network at all (idempotent, offline-friendly)
  for v in "${candidates[@]}"; do
    if is_complete "$v"; then
      KAFKA_VERSION="$v"
      KAFKA_LIBS="$(libs_dir "$v")"
      exec 9>&-
      return 0
    fi
  done
  # 2) newest version that Maven Central has
  for v in "${candidates[@]}"; do
    rc=0
    download_version "$v" || rc=$?
    if ((rc == 0)); then
      KAFKA_VERSION="$v"
      KAFKA_LIBS="$(libs_dir "$v")"
      exec 9>&-
      return 0
    fi
  done
  die "none of Kafka ${candidates[*]} could be found on Maven Central"
}

# ---------------------------------------------------------------- start ----

# Prints N distinct free TCP ports on 127.0.0.1. All listeners are held open
# until every port is picked, so the N ports are guaranteed to differ.
free_ports() {
  node -e '
    const net = require("node:net");
    const n = Number(process.argv[1]);
    const servers = [];
    const next = () => {
      if (servers.length === n) {
        console.log(servers.map((s) => s.address().port).join(" "));
        for (const s of servers) s.close();
        return;
      }
      const s = net.createServer();
      s.listen(0, "127.0.0.1", () => { servers.push(s); next(); });
    };
    next();' "$1"
}

port_is_free() {
  node -e '
    const s = require("node:net").createServer();
    s.once("error", () => process.exit(1));
    s.listen(Number(process.argv[1]), "127.0.0.1", () => s.close(() => process.exit(0)));' "$1"
}

# Kafka cluster ids are 16 random bytes, base64url without padding (22 chars).
# Generated here instead of `StorageTool random-uuid` to save a JVM start. It is passed as
# --cluster-id=ID: an id starting with '-' (1 in 64) would otherwise be parsed as an option.
random_cluster_id() {
  node -e 'process.stdout.write(require("node:crypto").randomBytes(16).toString("base64url"))'
}

write_server_properties() {
  local dir="$1" port="$2" cport="$3"
  cat >"$dir/server.properties" <<EOF
# Generated by scripts/kafka-local.sh — single node, KRaft combined mode, tests only.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:${cport}
controller.listener.names=CONTROLLER
# Loopback only: nothing outside this machine can reach the test broker.
listeners=PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${cport}
advertised.listeners=PLAINTEXT://127.0.0.1:${port}
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=${dir}/data

# One broker: every internal topic must accept replication factor 1, or
# consumer groups and transactions would never become available.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
default.replication.factor=1
min.insync.replicas=1
# 50 partitions each (the default) only cost start-up time on a 2-core box.
offsets.topic.num.partitions=3
transaction.state.log.num.partitions=3

# Tests create their topics explicitly; a typo must fail, not auto-create.
auto.create.topics.enable=false
num.partitions=1
# Consumer groups join immediately instead of waiting 3 s for more members.
group.initial.rebalance.delay.ms=0
# Tidy up abandoned test transactions quickly.
transaction.abort.timed.out.transaction.cleanup.interval.ms=10000
transactional.id.expiration.ms=3600000

# Be light: the machine has 2 cores and other things run beside the broker.
num.network.threads=2
num.io.threads=2
background.threads=2
num.recovery.threads.per.data.dir=1
log.cleaner.threads=1
log.retention.check.interval.ms=300000
EOF

  # Both logging configs are written; java_opts points the JVM at the one its Kafka
  # version reads. Everything goes to stdout, which start() redirects into broker.log.
  cat >"$dir/log4j.properties" <<'EOF'
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.log.LogCleaner=WARN
EOF
  cat >"$dir/log4j2.properties" <<'EOF'
status = warn
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
logger.cleaner.name = kafka.log.LogCleaner
logger.cleaner.level = WARN
EOF
}

java_opts() {
  # Serial GC and a small heap: a test broker holds almost nothing, and G1's
  # extra threads compete with the tests for the 2 cores.
  # shellcheck disable=SC2206
  local heap=(${KAFKA_HEAP_OPTS:--Xms128m -Xmx512m})
  JAVA_OPTS=("${heap[@]}" -XX:+UseSerialGC -XX:+ExitOnOutOfMemoryError
    -Djava.awt.headless=true)
  if uses_log4j2 "$KAFKA_VERSION"; then
    JAVA_OPTS+=(-Dlog4j2.configurationFile="$1/log4j2.properties")
  else
    JAVA_OPTS+=(-Dlog4j.configuration="file:$1/log4j.properties")
  fi
}

# Returns 0 once the broker answers a metadata request (kafkajs admin
# listTopics), i.e. it is up, unfenced and serving clients — not just
# listening on the port.
broker_answers() {
  (cd "$REPO_ROOT" && node -e '
    const { Kafka, logLevel } = require("kafkajs");
    const kafka = new Kafka({
      clientId: "kafka-local-ready",
      brokers: [process.argv[1]],
      logLevel: logLevel.NOTHING,
      connectionTimeout: 1000,
      requestTimeout: 3000,
      retry: { retries: 0 },
    });
    const admin = kafka.admin();
    admin.connect()
      .then(() => admin.listTopics())
      .then(() => admin.disconnect())
      .then(() => process.exit(0), () => process.exit(1));' "$1") >/dev/null 2>&1
}

pid_alive() { [[ -n "$1" ]] && kill -0 "$1" 2>/dev/null; }

# Guards against pid reuse: only signal a java process running our config.
is_our_broker() {
  local pid="$1" dir="$2"
  pid_alive "$pid" && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "kafka.Kafka $dir/server.properties"
}

on_start_exit() {
  if [[ "${START_OK:-1}" != 1 && -n "${START_DIR:-}" ]]; then
    log "start failed: cleaning up $START_DIR"
    stop_dir "$START_DIR" >/dev/null 2>&1 || true
  fi
}

cmd_start() {
  local dir="" port="" secured=0
  while (($#)); do
    case "$1" in
      --dir) dir="${2:?--dir needs a value}"; shift 2 ;;
      --port) port="${2:?--port needs a value}"; shift 2 ;;
      --secured) secured=1; shift ;;
      *) die "start: unknown argument $1" ;;
    esac
  done

  require_java
  require_node
  fetch_kafka # no-op when the cache is complete

  # Ports first, so a bad --port fails before any folder is created.
  local cport
  if [[ -n "$port" ]]; then
    [[ "$port" =~ ^[0-9]+$ ]] || die "--port must be a number"
    port_is_free "$port" || die "port $port on 127.0.0.1 is already in use"
    cport="$(free_ports 1)"
    [[ "$cport" != "$port" ]] || cport="$(free_ports 2 | cut -d' ' -f2)"
  else
    read -r port cport < <(free_ports 2)
  fi

  if [[ -z "$dir" ]]; then
    dir="$(mktemp -d "${TMPDIR:-/tmp}/rankdistill-kafka-$$.XXXXXX")"
  else
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    if [[ -f "$dir/pid" ]] && is_our_broker "$(cat "$dir/pid")" "$dir"; then
      die "a broker from $dir is already running (pid $(cat "$dir/pid"), $(cat "$dir/brokers" 2>/dev/null)); stop it first"
    fi
    # Refuse to take over (and later delete) a folder this script did not create.
    if [[ ! -f "$dir/$DIR_MARKER" ]] && [[ -n "$(ls -A "$dir")" ]]; then
      die "$dir is not empty and was not created by kafka-local.sh; pick an empty or new --dir"
    fi
    # Leftovers of an earlier run (old cluster id): start from a clean log.
    rm -rf "$dir/data" "$dir/pid" "$dir/brokers" "$dir/broker.log"
  fi
  touch "$dir/$DIR_MARKER"

  # From here on, any failure or interrupt (Ctrl-C, timeout, broker crash)
  # kills a half-started broker and removes the folder: never leave a stray
  # JVM behind. The relevant log has been printed by then.
  START_DIR="$dir"
  START_OK=0
  trap 'on_start_exit' EXIT
  trap 'exit 130' INT TERM

  write_server_properties "$dir" "$port" "$cport"
  SECURED_FORMAT_ARGS=()
  if ((secured)); then
    # shellcheck source=scripts/kafka-secured.sh
    source "$REPO_ROOT/scripts/kafka-secured.sh"
    secured_configure "$dir" "$port" "$cport"
  fi
  java_opts "$dir"
  local cp="$KAFKA_LIBS/*"

  # KRaft needs its metadata log formatted with a cluster id before first start.
  log "formatting KRaft storage in $dir/data (kafka $KAFKA_VERSION)"
  if ! java "${JAVA_OPTS[@]}" -cp "$cp" kafka.tools.StorageTool format \
    --cluster-id="$(random_cluster_id)" -c "$dir/server.properties" "${SECURED_FORMAT_ARGS[@]}" >"$dir/format.log" 2>&1; then
    cat "$dir/format.log" >&2
    die "formatting the KRaft storage failed"
  fi

  log "starting broker on 127.0.0.1:$port (controller 127.0.0.1:$cport), log: $dir/broker.log"
  # setsid + nohup: the broker outlives this script and is not hit by a Ctrl-C
  # or hang-up aimed at the shell/test run that started it; `stop` ends it.
  local started=$SECONDS
  setsid nohup java "${JAVA_OPTS[@]}" -cp "$cp" kafka.Kafka "$dir/server.properties" \
    >"$dir/broker.log" 2>&1 </dev/null &
  local pid=$!
  echo "$pid" >"$dir/pid"
  echo "127.0.0.1:$port" >"$dir/brokers"
  echo "$dir" >"$CURRENT_FILE"

  # Wait until it really serves clients. A cheap /dev/tcp probe first, so node
  # (≈0.3 s per run) is only spawned once the port is open.
  while :; do
    if ! pid_alive "$pid"; then
      log "the broker exited during start-up; last lines of $dir/broker.log:"
      tail -n 40 "$dir/broker.log" >&2 || true
      die "local Kafka broker failed to start"
    fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null &&
      if ((secured)); then secured_broker_answers "$dir" "127.0.0.1:$port"; else broker_answers "127.0.0.1:$port"; fi; then
      break
    fi
    if ((SECONDS - started >= READY_TIMEOUT_S)); then
      log "no answer from 127.0.0.1:$port after ${READY_TIMEOUT_S}s; last lines of $dir/broker.log:"
      tail -n 40 "$dir/broker.log" >&2 || true
      die "local Kafka broker did not become ready"
    fi
    sleep 0.5
  done
  log "broker ready after $((SECONDS - started))s (pid $pid)"
  START_OK=1

  if ((secured)); then secured_print_env "$dir" "$port"; else echo "KAFKA_BROKERS=127.0.0.1:$port"; fi
  echo "KAFKA_LOCAL_DIR=$dir"
}

# ------------------------------------------------------------ stop/status --

resolve_dir() {
  local dir="$1"
  [[ -n "$dir" ]] || dir="${KAFKA_LOCAL_DIR:-}"
  [[ -n "$dir" ]] || dir="$(cat "$CURRENT_FILE" 2>/dev/null || true)"
  echo "$dir"
}

stop_dir() {
  local dir="$1" pid
  pid="$(cat "$dir/pid" 2>/dev/null || true)"
  if [[ -n "$pid" ]] && is_our_broker "$pid" "$dir"; then
    log "stopping broker pid $pid (SIGTERM, up to ${STOP_TIMEOUT_S}s)"
    kill -TERM "$pid" 2>/dev/null || true
    local waited=0
    while pid_alive "$pid" && ((waited < STOP_TIMEOUT_S * 10)); do
      sleep 0.1
      waited=$((waited + 1))
    done
    if pid_alive "$pid"; then
      log "broker did not exit in ${STOP_TIMEOUT_S}s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      while pid_alive "$pid"; do sleep 0.1; done
    fi
  else
    log "no running broker in $dir"
  fi
  # Only ever delete folders this script created.
  if [[ -f "$dir/$DIR_MARKER" ]]; then
    rm -rf "$dir"
  fi
  if [[ "$(cat "$CURRENT_FILE" 2>/dev/null || true)" == "$dir" ]]; then
    rm -f "$CURRENT_FILE"
  fi
}

cmd_stop() {
  local dir=""
  while (($#)); do
    case "$1" in
      --dir) dir="${2:?--dir needs a value}"; shift 2 ;;
      *) die "stop: unknown argument $1" ;;
    esac
  done
  dir="$(resolve_dir "$dir")"
  if [[ -z "$dir" ]]; then
    log "no local broker recorded; nothing to stop"
    return 0
  fi
  [[ -d "$dir" ]] || { log "$dir does not exist; nothing to stop"; return 0; }
  dir="$(cd "$dir" && pwd)"
  stop_dir "$dir"
}

cmd_status() {
  local dir=""
  while (($#)); do
    case "$1" in
      --dir) dir="${2:?--dir needs a value}"; shift 2 ;;
      *) die "status: unknown argument $1" ;;
    esac
  done
  dir="$(resolve_dir "$dir")"
  local cached="" v
  for v in "${KAFKA_CANDIDATES[@]}"; do is_complete "$v" && cached+="$v "; done
  echo "cache: $CACHE_ROOT (complete: ${cached:-none})"
  if [[ -n "$dir" && -f "$dir/pid" ]] && is_our_broker "$(cat "$dir/pid")" "$dir"; then
    local brokers
    brokers="$(cat "$dir/brokers")"
    echo "running: pid $(cat "$dir/pid"), dir $dir"
    if (exec 3<>"/dev/tcp/${brokers%:*}/${brokers##*:}") 2>/dev/null; then
      echo "KAFKA_BROKERS=$brokers"
    else
      echo "process is up but $brokers is not accepting connections (yet?)"
    fi
    return 0
  fi
  echo "not running${dir:+ (dir: $dir)}"
  return 1
}

cmd_fetch() {
  [[ $# -eq 0 ]] || die "fetch takes no arguments"
  require_java
  fetch_kafka
  echo "KAFKA_VERSION=$KAFKA_VERSION"
  echo "KAFKA_LIBS=$KAFKA_LIBS"
}

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
}

main() {
  local cmd="${1:-}"
  (($#)) && shift
  case "$cmd" in
    fetch) cmd_fetch "$@" ;;
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    status) cmd_status "$@" ;;
    -h | --help | help) usage ;;
    *) usage; exit 2 ;;
  esac
}

main "$@"
