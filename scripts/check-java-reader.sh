#!/usr/bin/env bash
# check-java-reader.sh — builds the Java label reader (examples/java, Maven: avro-maven-plugin
# generates the specific records from schemas/*.avsc) and runs the readers' integration test with
# it: test/integration/label-readers.test.ts with RANKDISTILL_CHECK_JAVA=1, against a local broker
# and schema registry (scripts/test.sh starts them). The Java reader must read exactly what the
# TypeScript client reads, as the Python one does in `npm test`.
#
# Not part of `npm test`: the Maven build takes ~1 min with ~/.m2 warm (~2.5 min on first use,
# from Maven Central) on top of the test's ~1 min.
#
#   bash scripts/check-java-reader.sh
set -euo pipefail
cd "$(dirname "$0")/.."

command -v java >/dev/null 2>&1 || { echo "check-java-reader: java (17+) is required" >&2; exit 1; }
command -v mvn >/dev/null 2>&1 || { echo "check-java-reader: Maven (mvn) is required" >&2; exit 1; }

echo "== building examples/java (mvn package)"
started=$SECONDS
mvn -B -q -f examples/java package
echo "   built in $((SECONDS - started))s: examples/java/target/rankdistill-label-reader.jar"

RANKDISTILL_CHECK_JAVA=1 bash scripts/test.sh test/integration/label-readers.test.ts
