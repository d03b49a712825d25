"""Record iscc-bio 0.2.0's biocodes for the compatibility fixtures.

Installs iscc-bio 0.2.0 (with its readers) into its own venv, generates the
fixtures of tests/compat_fixtures.py, runs iscc-bio's Python API on each in
that venv, and writes tests/data/iscc_bio_0.2.0.json. Run it with the project
venv:  .venv/bin/python scripts/record_iscc_bio.py [--venv DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

RUNNER = """
import json, sys, logging
logging.disable(logging.CRITICAL)
from loguru import logger
logger.remove()
from iscc_bio.api import biocode
out = {}
for path in sys.argv[1:]:
    try:
        r = biocode(path, simprints=True)
        out[path] = {"parts": r["parts"], "iscc_code": r["iscc_code"]}
    except Exception as exc:
        out[path] = {"error": f"{type(exc).__name__}: {exc}"}
print(json.dumps(out))
"""


def ensure_venv(where: Path) -> Path:
    python = where / "bin" / "python"
    if not python.exists():
        venv.create(where, with_pip=True)
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "iscc-bio[readers]==0.2.0"],
        check=True,
    )
    return python


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, default=ROOT / ".cache" / "iscc-bio-0.2.0")
    args = parser.parse_args()
    import compat_fixtures

    python = ensure_venv(args.venv)
    with tempfile.TemporaryDirectory() as tmp:
        files = compat_fixtures.build(Path(tmp))
        proc = subprocess.run(
            [python, "-c", RUNNER, *map(str, files.values())],
            capture_output=True,
            text=True,
            check=True,
        )
        raw = json.loads(proc.stdout)
    version = subprocess.run(
        [python, "-c", "import iscc_bio;print(iscc_bio.__version__)"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    record = {
        "iscc_bio": version,
        "results": {name: raw[str(path)] for name, path in files.items()},
    }
    target = ROOT / "tests" / "data" / "iscc_bio_0.2.0.json"
    target.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
