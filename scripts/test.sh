#!/usr/bin/env bash
# The project's test command (`npm test`): lint, type-check, contract drift check, then every
# test file under test/ in ONE node:test run, so the runner's summary is the last thing printed.
#
# Integration tests (test/integration/) need a Kafka broker. Unless KAFKA_BROKERS points at an
# existing cluster, this script starts the project's local KRaft broker once for the whole run
# (scripts/kafka-local.sh) and stops it at the end. If the broker cannot be started, the tests still
# run and the integration tests fail saying why: they are never skipped silently.
# Likewise, when a chosen integration test reads SCHEMA_REGISTRY_URL and it is unset, the local
# Confluent-compatible schema registry (scripts/schema-registry-local.sh) is started after the broker.
# A chosen integration test that reads KAFKA_SECURED_BROKERS gets a secured broker instead
# (kafka-local.sh start --secured: SASL_SSL, SCRAM users, ACLs enforced; KAFKA_SECURED_* exported).
#
#   bash scripts/test.sh           # everything
#   bash scripts/test.sh --unit    # no broker, unit tests only
#   bash scripts/test.sh test/labels/pointwise.test.ts   # chosen files (broker started if any is integration)
set -euo pipefail
cd "$(dirname "$0")/.."

unit_only=0
files=()
for a in "$@"; do
  case "$a" in
    --unit) unit_only=1 ;;
    *) files+=("$a") ;;
  esac
done

# The service's info lines (JSON on stderr: tasks assigned, ready, committed ...) would be mixed
# into the runner's output by the hundred; tests that read them set the level of their own child.
export RANKDISTILL_LOG_LEVEL="${RANKDISTILL_LOG_LEVEL:-warn}"

echo "== lint (biome)"
npx biome check .
echo "== type-check (tsc)"
npx tsc -p tsconfig.json
echo "== contract drift (schemas/*.avsc vs src/contracts/types.gen.ts)"
node --import tsx scripts/gen-types.ts --check

if [ ${#files[@]} -eq 0 ]; then
  if [ $unit_only -eq 1 ]; then
    mapfile -t files < <(find test -name '*.test.ts' -not -path 'test/integration/*' | sort)
  else
    mapfile -t files < <(find test -name '*.test.ts' | sort)
  fi
fi

needs_kafka=0
needs_secured=0
for f in "${files[@]}"; do
  case "$f" in
    test/integration/*)
      if grep -q KAFKA_SECURED_ "$f"; then needs_secured=1; else needs_kafka=1; fi
      ;;
  esac
done

needs_registry=0
for f in "${files[@]}"; do
  case "$f" in test/integration/*) grep -q SCHEMA_REGISTRY_URL "$f" && needs_registry=1 ;; esac
done

kafka_dir=""
secured_dir=""
registry_dir=""
cleanup() {
  if [ -n "$secured_dir" ]; then bash scripts/kafka-local.sh stop --dir "$secured_dir" >/dev/null 2>&1 || true; fi
  if [ -n "$registry_dir" ]; then bash scripts/schema-registry-local.sh stop --dir "$registry_dir" >/dev/null 2>&1 || true; fi
  if [ -n "$kafka_dir" ]; then bash scripts/kafka-local.sh stop --dir "$kafka_dir" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

if [ $needs_kafka -eq 1 ] && [ -z "${KAFKA_BROKERS:-}" ]; then
  kafka_dir="$(mktemp -d "${TMPDIR:-/tmp}/rankdistill-test-kafka.XXXXXX")"
  echo "== starting the local Kafka broker (KRaft) in $kafka_dir"
  if out="$(bash scripts/kafka-local.sh start --dir "$kafka_dir")"; then
    KAFKA_BROKERS="$(printf '%s\n' "$out" | sed -n 's/^KAFKA_BROKERS=//p' | tail -1)"
    export KAFKA_BROKERS
    echo "   KAFKA_BROKERS=$KAFKA_BROKERS"
  else
    echo "!! the local Kafka broker could not be started (see above); integration tests will fail" >&2
  fi
fi

if [ $needs_secured -eq 1 ] && [ -z "${KAFKA_SECURED_BROKERS:-}" ]; then
  secured_dir="$(mktemp -d "${TMPDIR:-/tmp}/rankdistill-test-kafka-secured.XXXXXX")"
  echo "== starting the secured local Kafka broker (SASL_SSL, SCRAM, ACLs) in $secured_dir"
  if out="$(bash scripts/kafka-local.sh start --secured --dir "$secured_dir")"; then
    while IFS= read -r line; do
      case "$line" in KAFKA_SECURED_*=*) export "${line?}" ;; esac
    done <<<"$out"
    echo "   KAFKA_SECURED_BROKERS=$KAFKA_SECURED_BROKERS"
  else
    echo "!! the secured Kafka broker could not be started (see above); its integration tests will fail" >&2
  fi
fi

if [ $needs_registry -eq 1 ] && [ -z "${SCHEMA_REGISTRY_URL:-}" ]; then
  registry_dir="$(mktemp -d "${TMPDIR:-/tmp}/rankdistill-test-registry.XXXXXX")"
  echo "== starting the local schema registry in $registry_dir (built from Maven Central on first use)"
  if out="$(bash scripts/schema-registry-local.sh start --dir "$registry_dir" --brokers "${KAFKA_BROKERS:-}")"; then
    SCHEMA_REGISTRY_URL="$(printf '%s\n' "$out" | sed -n 's/^SCHEMA_REGISTRY_URL=//p' | tail -1)"
    export SCHEMA_REGISTRY_URL
    echo "   SCHEMA_REGISTRY_URL=$SCHEMA_REGISTRY_URL"
  else
    echo "!! the local schema registry could not be started (see above); its integration tests will fail" >&2
  fi
fi

echo "== tests (node:test)"
node --import tsx --test --test-concurrency="${TEST_CONCURRENCY:-2}" --test-reporter=spec "${files[@]}"
