#!/usr/bin/env bash
# schema-registry-local.sh — a real Confluent-compatible Schema Registry for the
# integration tests: Apicurio Registry 2.4.2.Final (its /apis/ccompat/v7 API),
# built from the artifacts published on Maven Central, in-memory storage (H2).
#
# Why this one: the machines reach only package registries (no Docker, no
# Confluent repository). Confluent's own server is not on Maven Central, and
# Karapace has no package on PyPI (`pip download karapace` finds no version).
# Apicurio publishes its Quarkus application as a plain jar
# (io.apicurio:apicurio-registry-app). Quarkus applications must be
# "augmented" at build time, so this script writes a tiny Maven project that
# depends on that jar and runs quarkus-maven-plugin:build, which yields a
# runnable `*-runner.jar` + `lib/` — exactly what Apicurio's own distribution
# ships. It is built once and cached.
#
# Why 2.4.2.Final and the workarounds in the generated project: every newer
# line (2.6.x, 3.x) depends on io.apicurio:apicurio-registry-schema-util-provider
# versions that Maven Central does not serve. 2.4.2.Final resolves from Central
# except for two things, handled below:
#   * com.github.everit-org.json-schema (a JitPack-only artifact) is swapped for
#     the same library republished on Central as com.github.erosb:everit-json-schema;
#   * the config-index Quarkus extension has no deployment artifact on Central;
#     its only job is a bean listing the dynamic config properties, which the
#     project provides (empty) instead. Dynamic config is not used here.
# Storage is H2 in memory: no broker is needed and every start is a clean
# registry (tests register their own subjects anyway).
#
# Usage:
#   scripts/schema-registry-local.sh fetch                 # build into the cache (idempotent)
#   scripts/schema-registry-local.sh start [--dir DIR] [--port PORT] [--brokers HOST:PORT]
#   scripts/schema-registry-local.sh stop  [--dir DIR]
#   scripts/schema-registry-local.sh status [--dir DIR]
#
# `start` prints KEY=VALUE lines on stdout (everything else goes to stderr):
#   SCHEMA_REGISTRY_URL=http://127.0.0.1:PORT/apis/ccompat/v7
#   SCHEMA_REGISTRY_LOCAL_DIR=DIR
# so `eval "$(scripts/schema-registry-local.sh start)"` works. The URL is the
# base of the Confluent REST API (POST $URL/subjects/t-value/versions, ...).
# `--brokers` is accepted for symmetry with registries that keep their schemas
# in Kafka (Karapace, Confluent); the in-memory store here does not use it.
#
# Environment:
#   RANKDISTILL_CACHE            cache root (default ~/.cache/rankdistill)
#   SCHEMA_REGISTRY_HEAP_OPTS    JVM heap flags (default -Xms64m -Xmx384m)
set -euo pipefail

APICURIO_VERSION=2.4.2.Final
# The Quarkus version Apicurio 2.4.2.Final itself is built with (its parent POM's quarkus.version).
QUARKUS_VERSION=2.16.4.Final
EVERIT_VERSION=1.14.2
COMPILER_PLUGIN_VERSION=3.13.0
CCOMPAT_PATH=/apis/ccompat/v7

CACHE_ROOT="${RANKDISTILL_CACHE:-$HOME/.cache/rankdistill}"
CURRENT_FILE="$CACHE_ROOT/schema-registry-current-dir"
DIR_MARKER=".rankdistill-schema-registry" # only dirs carrying this are ever deleted
# Quarkus boots in ~10 s on an idle box; two busy cores and a cold JIT can take 30 s+.
READY_TIMEOUT_S=150
STOP_TIMEOUT_S=20

log() { printf '[schema-registry-local] %s\n' "$*" >&2; }
die() { printf '[schema-registry-local] ERROR: %s\n' "$*" >&2; exit 1; }

require_java() {
  command -v java >/dev/null 2>&1 ||
    die "Java 17+ is required to run the local schema registry (or set SCHEMA_REGISTRY_URL to an existing one)"
  local spec
  spec="$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.specification\.version = //p')"
  if ! [[ "$spec" =~ ^[0-9]+$ ]] || ((spec < 17)); then
    die "Java 17+ is required to run the local schema registry; found java ${spec:-unknown}"
  fi
}

require_node() {
  command -v node >/dev/null 2>&1 || die "node is required (port picking and the readiness check use it)"
}

# ---------------------------------------------------------------- fetch ----

app_dir() { echo "$CACHE_ROOT/schema-registry-apicurio-$APICURIO_VERSION"; }
runner_jar() { echo "$(app_dir)/app/rankdistill-schema-registry-1-runner.jar"; }
is_complete() { [[ -f "$(app_dir)/app/.complete" ]]; }

# The throwaway Quarkus project (see the header for why each piece is there).
write_project() {
  local dest="$1"
  mkdir -p "$dest/src/main/java/rankdistill/registry" "$dest/src/main/resources"
  cat >"$dest/pom.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>rankdistill.local</groupId>
  <artifactId>rankdistill-schema-registry</artifactId>
  <version>1</version>
  <packaging>jar</packaging>
  <properties>
    <project.build.sourceEncoding>UTF-8</project.build.sourceEncoding>
  </properties>
  <dependencyManagement>
    <dependencies>
      <!-- Apicurio's parent POM pins every version (and imports the Quarkus BOM). -->
      <dependency>
        <groupId>io.apicurio</groupId>
        <artifactId>apicurio-registry</artifactId>
        <version>${APICURIO_VERSION}</version>
        <type>pom</type>
        <scope>import</scope>
      </dependency>
    </dependencies>
  </dependencyManagement>
  <dependencies>
    <dependency>
      <groupId>io.apicurio</groupId>
      <artifactId>apicurio-registry-app</artifactId>
      <version>${APICURIO_VERSION}</version>
      <exclusions>
        <!-- Its deployment half is not on Maven Central; EmptyDynamicConfigPropertyList replaces it. -->
        <exclusion>
          <groupId>io.apicurio</groupId>
          <artifactId>apicurio-common-app-components-config-index</artifactId>
        </exclusion>
        <!-- JitPack only; the same classes come from com.github.erosb below. -->
        <exclusion>
          <groupId>com.github.everit-org.json-schema</groupId>
          <artifactId>org.everit.json.schema</artifactId>
        </exclusion>
      </exclusions>
    </dependency>
    <dependency>
      <groupId>com.github.erosb</groupId>
      <artifactId>everit-json-schema</artifactId>
      <version>${EVERIT_VERSION}</version>
    </dependency>
  </dependencies>
  <build>
    <plugins>
      <plugin>
        <groupId>org.apache.maven.plugins</groupId>
        <artifactId>maven-compiler-plugin</artifactId>
        <version>${COMPILER_PLUGIN_VERSION}</version>
        <configuration><release>17</release></configuration>
      </plugin>
      <plugin>
        <groupId>io.quarkus</groupId>
        <artifactId>quarkus-maven-plugin</artifactId>
        <version>${QUARKUS_VERSION}</version>
        <executions>
          <execution>
            <goals><goal>build</goal></goals>
          </execution>
        </executions>
      </plugin>
    </plugins>
  </build>
</project>
EOF
  cat >"$dest/src/main/java/rankdistill/registry/EmptyDynamicConfigPropertyList.java" <<'EOF'
package rankdistill.registry;

import io.apicurio.common.apps.config.DynamicConfigPropertyList;
import java.util.List;
import javax.enterprise.inject.Produces;
import javax.inject.Singleton;

/**
 * Stands in for the config-index Quarkus extension, whose build-time half is not on Maven
 * Central: that extension only produces this bean, listing the dynamically changeable
 * config properties. None are used here, so the list is empty.
 */
public class EmptyDynamicConfigPropertyList {
  @Produces
  @Singleton
  DynamicConfigPropertyList list() {
    return new DynamicConfigPropertyList(List.of());
  }
}
EOF
  cat >"$dest/src/main/resources/application.properties" <<'EOF'
# The registry app is a dependency of this project, not the project itself, and its jar has no
# Jandex index: tell Quarkus to index it so its beans and REST resources are found.
quarkus.index-dependency.registry-app.group-id=io.apicurio
quarkus.index-dependency.registry-app.artifact-id=apicurio-registry-app
EOF
  # Some POMs in the tree declare other repositories (e.g. Eclipse's for jgit); only Maven
  # Central is reachable, so every repository is mirrored to it.
  cat >"$dest/settings.xml" <<'EOF'
<settings>
  <mirrors>
    <mirror>
      <id>central-only</id>
      <mirrorOf>*</mirrorOf>
      <url>https://repo.maven.apache.org/maven2</url>
    </mirror>
  </mirrors>
</settings>
EOF
}

# Builds the runnable registry into the cache. Serialised with flock so two
# concurrent `start`s on a fresh machine do not build into the same folder.
fetch_registry() {
  is_complete && return 0
  command -v mvn >/dev/null 2>&1 || die "Maven (mvn) is required to build the schema registry from Maven Central"
  mkdir -p "$CACHE_ROOT"
  exec 8>"$CACHE_ROOT/.schema-registry-fetch.lock"
  flock 8
  if is_complete; then
    exec 8>&-
    return 0
  fi
  local work started=$SECONDS
  work="$(mktemp -d "${TMPDIR:-/tmp}/rankdistill-registry-build.XXXXXX")"
  write_project "$work"
  log "building Apicurio Registry $APICURIO_VERSION (Quarkus $QUARKUS_VERSION) from Maven Central; first time only, takes minutes..."
  if ! (cd "$work" && mvn -B -ntp -s settings.xml package -DskipTests >"$work/build.log" 2>&1); then
    grep -E '^\[ERROR\]' "$work/build.log" | head -n 30 >&2 || tail -n 40 "$work/build.log" >&2
    log "full Maven log: $work/build.log"
    exec 8>&-
    die "building the schema registry failed; no registry was started"
  fi
  [[ -f "$work/target/rankdistill-schema-registry-1-runner.jar" && -d "$work/target/lib" ]] ||
    die "mvn finished but target/*-runner.jar or target/lib is missing (see $work/build.log)"
  # Publish with the marker written last, so a half-finished build is never taken as complete.
  local target
  target="$(app_dir)"
  rm -rf "$target"
  mkdir -p "$target/app"
  mv "$work/target/rankdistill-schema-registry-1-runner.jar" "$work/target/lib" "$target/app/"
  mkdir -p "$target/project"
  cp -r "$work/pom.xml" "$work/settings.xml" "$work/src" "$target/project/" # kept to show what was built
  rm -rf "$work"
  date -u +%Y-%m-%dT%H:%M:%SZ >"$target/app/.complete"
  log "built in $((SECONDS - started))s: $(runner_jar)"
  exec 8>&-
}

# ---------------------------------------------------------------- start ----

free_port() {
  node -e '
    const s = require("node:net").createServer();
    s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'
}

port_is_free() {
  node -e '
    const s = require("node:net").createServer();
    s.once("error", () => process.exit(1));
    s.listen(Number(process.argv[1]), "127.0.0.1", () => s.close(() => process.exit(0)));' "$1"
}

# 0 once the Confluent API answers (GET /subjects is 200), not merely once the port is open.
registry_answers() {
  node -e '
    fetch(process.argv[1] + "/subjects", { signal: AbortSignal.timeout(3000) })
      .then((r) => process.exit(r.status === 200 ? 0 : 1), () => process.exit(1));' "$1" >/dev/null 2>&1
}

pid_alive() { [[ -n "$1" ]] && kill -0 "$1" 2>/dev/null; }

# Guards against pid reuse: only signal a java process started for this dir.
is_our_registry() {
  local pid="$1" dir="$2"
  pid_alive "$pid" && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "-Drankdistill.registry.dir=$dir "
}

on_start_exit() {
  if [[ "${START_OK:-1}" != 1 && -n "${START_DIR:-}" ]]; then
    log "start failed: cleaning up $START_DIR"
    stop_dir "$START_DIR" >/dev/null 2>&1 || true
  fi
}

cmd_start() {
  local dir="" port=""
  while (($#)); do
    case "$1" in
      --dir) dir="${2:?--dir needs a value}"; shift 2 ;;
      --port) port="${2:?--port needs a value}"; shift 2 ;;
      --brokers) shift 2 ;; # accepted, unused: the in-memory store needs no Kafka (see header)
      *) die "start: unknown argument $1" ;;
    esac
  done

  require_java
  require_node
  fetch_registry # no-op when the cache is complete

  if [[ -n "$port" ]]; then
    [[ "$port" =~ ^[0-9]+$ ]] || die "--port must be a number"
    port_is_free "$port" || die "port $port on 127.0.0.1 is already in use"
  else
    port="$(free_port)"
  fi

  if [[ -z "$dir" ]]; then
    dir="$(mktemp -d "${TMPDIR:-/tmp}/rankdistill-schema-registry-$$.XXXXXX")"
  else
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    if [[ -f "$dir/pid" ]] && is_our_registry "$(cat "$dir/pid")" "$dir"; then
      die "a registry from $dir is already running (pid $(cat "$dir/pid"), $(cat "$dir/url" 2>/dev/null)); stop it first"
    fi
    # Refuse to take over (and later delete) a folder this script did not create.
    if [[ ! -f "$dir/$DIR_MARKER" ]] && [[ -n "$(ls -A "$dir")" ]]; then
      die "$dir is not empty and was not created by schema-registry-local.sh; pick an empty or new --dir"
    fi
    rm -f "$dir/pid" "$dir/url" "$dir/registry.log"
  fi
  touch "$dir/$DIR_MARKER"

  # From here on any failure or interrupt kills a half-started JVM and removes the folder.
  START_DIR="$dir"
  START_OK=0
  trap 'on_start_exit' EXIT
  trap 'exit 130' INT TERM

  # Serial GC and a small heap: an in-memory registry of a few test schemas needs little, and
  # G1's extra threads would compete with the tests for the 2 cores.
  # shellcheck disable=SC2206
  local heap=(${SCHEMA_REGISTRY_HEAP_OPTS:--Xms64m -Xmx384m})
  local url="http://127.0.0.1:$port$CCOMPAT_PATH"
  log "starting Apicurio Registry $APICURIO_VERSION on 127.0.0.1:$port, log: $dir/registry.log"
  local started=$SECONDS
  # setsid + nohup: the JVM outlives this script and ignores a Ctrl-C aimed at the test run;
  # `stop` ends it. The -Drankdistill.registry.dir tag lets stop/status recognise it.
  # Loopback only; uploads of temp files and the import work dir stay in $dir.
  setsid nohup java "${heap[@]}" -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:+ExitOnOutOfMemoryError \
    -Djava.awt.headless=true -Djava.io.tmpdir="$dir" \
    "-Drankdistill.registry.dir=$dir" \
    -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port="$port" \
    -Dquarkus.http.access-log.enabled=false \
    -jar "$(runner_jar)" >"$dir/registry.log" 2>&1 </dev/null &
  local pid=$!
  echo "$pid" >"$dir/pid"
  echo "$url" >"$dir/url"
  echo "$dir" >"$CURRENT_FILE"

  while :; do
    if ! pid_alive "$pid"; then
      log "the registry exited during start-up; last lines of $dir/registry.log:"
      tail -n 40 "$dir/registry.log" >&2 || true
      die "local schema registry failed to start"
    fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && registry_answers "$url"; then
      break
    fi
    if ((SECONDS - started >= READY_TIMEOUT_S)); then
      log "no answer from $url after ${READY_TIMEOUT_S}s; last lines of $dir/registry.log:"
      tail -n 40 "$dir/registry.log" >&2 || true
      die "local schema registry did not become ready"
    fi
    sleep 0.5
  done
  log "registry ready after $((SECONDS - started))s (pid $pid)"
  START_OK=1

  echo "SCHEMA_REGISTRY_URL=$url"
  echo "SCHEMA_REGISTRY_LOCAL_DIR=$dir"
}

# ------------------------------------------------------------ stop/status --

resolve_dir() {
  local dir="$1"
  [[ -n "$dir" ]] || dir="${SCHEMA_REGISTRY_LOCAL_DIR:-}"
  [[ -n "$dir" ]] || dir="$(cat "$CURRENT_FILE" 2>/dev/null || true)"
  echo "$dir"
}

stop_dir() {
  local dir="$1" pid
  pid="$(cat "$dir/pid" 2>/dev/null || true)"
  if [[ -n "$pid" ]] && is_our_registry "$pid" "$dir"; then
    log "stopping registry pid $pid (SIGTERM, up to ${STOP_TIMEOUT_S}s)"
    kill -TERM "$pid" 2>/dev/null || true
    local waited=0
    while pid_alive "$pid" && ((waited < STOP_TIMEOUT_S * 10)); do
      sleep 0.1
      waited=$((waited + 1))
    done
    if pid_alive "$pid"; then
      log "registry did not exit in ${STOP_TIMEOUT_S}s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      while pid_alive "$pid"; do sleep 0.1; done
    fi
  else
    log "no running registry in $dir"
  fi
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
    log "no local registry recorded; nothing to stop"
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
  if is_complete; then
    echo "cache: $(app_dir) (built $(cat "$(app_dir)/app/.complete"))"
  else
    echo "cache: $(app_dir) (not built)"
  fi
  if [[ -n "$dir" && -f "$dir/pid" ]] && is_our_registry "$(cat "$dir/pid")" "$dir"; then
    local url
    url="$(cat "$dir/url")"
    echo "running: pid $(cat "$dir/pid"), dir $dir"
    if registry_answers "$url"; then
      echo "SCHEMA_REGISTRY_URL=$url"
    else
      echo "process is up but $url does not answer (yet?)"
    fi
    return 0
  fi
  echo "not running${dir:+ (dir: $dir)}"
  return 1
}

cmd_fetch() {
  [[ $# -eq 0 ]] || die "fetch takes no arguments"
  require_java
  fetch_registry
  echo "SCHEMA_REGISTRY_JAR=$(runner_jar)"
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
