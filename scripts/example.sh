#!/usr/bin/env bash
# Set up .venv from the lock if needed, generate the built-in example
# repository under example/, and compute the biocode of every image in it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
.venv/bin/biocodes make-example example > /dev/null
set +e
.venv/bin/biocodes biocode example/*/*
status=$?
set -e
echo
echo "example: computed biocodes for the images under example/;"
echo "the truncated file in example/corrupt is expected to fail (exit status $status)."
