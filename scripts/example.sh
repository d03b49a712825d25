#!/usr/bin/env bash
# Set up .venv from the lock if needed, then run the workflow on the built-in
# example: it generates example/, fingerprints it on local dask workers and
# writes results/catalogue/*.parquet, ending with a summary.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"
exec snakemake --profile profiles/default "$@"
