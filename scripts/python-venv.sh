#!/usr/bin/env bash
# python-venv.sh — the virtual environment of the Python label reader (examples/python), built from
# examples/python/requirements.txt with the machine's python3 and pip (PyPI), cached under
# ~/.cache/rankdistill/python-venv-<hash of requirements.txt>, so it is built once per set of pins.
#
#   bash scripts/python-venv.sh      # prints PYTHON=<venv>/bin/python on stdout (logs on stderr)
#
# Fails (exit 1, one line saying what is missing) when python3 (3.9+), its venv module or pip is
# not there; never falls back to the system's packages. Two runs at once on a fresh machine are
# serialised with flock; a half-built venv is never taken as complete (marker written last).
#
# Environment: RANKDISTILL_CACHE (default ~/.cache/rankdistill), PYTHON (default python3).
set -euo pipefail
cd "$(dirname "$0")/.."

REQS=examples/python/requirements.txt
CACHE_ROOT="${RANKDISTILL_CACHE:-$HOME/.cache/rankdistill}"
PY="${PYTHON:-python3}"

log() { printf '[python-venv] %s\n' "$*" >&2; }
die() { printf '[python-venv] ERROR: %s\n' "$*" >&2; exit 1; }

command -v "$PY" >/dev/null 2>&1 ||
  die "$PY not found: the Python label reader needs Python 3.9+ with venv and pip (e.g. apt-get install python3 python3-venv)"
"$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)' ||
  die "Python 3.9+ is required, found $("$PY" --version 2>&1)"
"$PY" -c 'import venv, ensurepip' 2>/dev/null ||
  die "$PY has no venv/ensurepip module (pip cannot be installed into a venv): install python3-venv"

hash="$(sha256sum "$REQS" | cut -c1-16)"
venv="$CACHE_ROOT/python-venv-$hash"
marker="$venv/.complete"

if [[ ! -f "$marker" ]]; then
  mkdir -p "$CACHE_ROOT"
  exec 9>"$CACHE_ROOT/.python-venv.lock"
  flock 9
  if [[ ! -f "$marker" ]]; then
    started=$SECONDS
    log "creating $venv from $REQS (first time for these pins)"
    rm -rf "$venv"
    "$PY" -m venv "$venv" || die "python3 -m venv $venv failed"
    # Wheels only: a pin without a wheel for this Python fails here instead of compiling.
    if ! "$venv/bin/python" -m pip install --disable-pip-version-check --no-input -q \
      --only-binary=:all: -r "$REQS" >&2; then
      rm -rf "$venv"
      die "pip install -r $REQS failed (is PyPI reachable? see above)"
    fi
    "$venv/bin/python" -c 'import confluent_kafka, fastavro' ||
      die "the venv at $venv cannot import confluent_kafka and fastavro after pip install"
    date -u +%Y-%m-%dT%H:%M:%SZ >"$marker"
    log "built in $((SECONDS - started))s"
  fi
  exec 9>&-
fi
echo "PYTHON=$venv/bin/python"
