#!/usr/bin/env bash
# Set up .venv from the lock if needed, then run the workflow on the built-in
# example: it generates example/, fingerprints it on local dask workers and
# writes results/catalogue/*.parquet, ending with a summary.
set -euo pipefail
# --configfile names a file from where the user stands, not from the checkout
args=()
want_file=0
for a in "$@"; do
  if [ "$want_file" = 1 ] || [[ "$a" == --configfile=* ]]; then
    f=${a#--configfile=}
    if [ ! -f "$f" ]; then
      echo "example.sh: config file '$f' not found (from $PWD)" >&2
      exit 1
    fi
    f=$(cd "$(dirname "$f")" && pwd)/$(basename "$f")
    if [[ "$a" == --configfile=* ]]; then a="--configfile=$f"; else a=$f; fi
  fi
  want_file=0
  if [ "$a" = "--configfile" ] || [ "$a" = "--configfiles" ]; then want_file=1; fi
  args+=("$a")
done
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"
exec snakemake --profile profiles/default ${args[@]+"${args[@]}"}
