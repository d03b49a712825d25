#!/usr/bin/env bash
# Build .venv from the hashed lock: once, and again whenever the lock or
# pyproject.toml changes. Needs only Python 3.11 and pip.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3.11}
command -v "$py" >/dev/null 2>&1 || py=python3
if [ ! -x .venv/bin/python ]; then
  "$py" -m venv .venv
fi
want=$(cat envs/requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat .venv/.installed 2>/dev/null)" != "$want" ]; then
  echo "bootstrap: installing the locked environment into .venv (first run takes a few minutes)" >&2
  log=.venv/install.log
  if ! { .venv/bin/python -m pip install --disable-pip-version-check \
           --require-hashes --no-deps -r envs/requirements.lock &&
         .venv/bin/python -m pip install --disable-pip-version-check \
           --no-deps --no-build-isolation -e . ; } > "$log" 2>&1; then
    tail -n 30 "$log" >&2
    echo "bootstrap: installation failed; full log in $log" >&2
    exit 1
  fi
  echo "$want" > .venv/.installed
fi
