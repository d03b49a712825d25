#!/usr/bin/env bash
# Set up .venv from the lock (and Bio-Formats) if needed, then run the whole
# test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
bash scripts/bioformats.sh >/dev/null  # the Bio-Formats tests need it
exec .venv/bin/python -m pytest "$@"
