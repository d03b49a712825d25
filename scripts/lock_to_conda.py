"""Write envs/biocodes.yaml from envs/requirements.lock: the same exact pins.

Run after regenerating the lock: python scripts/lock_to_conda.py
tests/test_nightly.py checks that both pin the same versions.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

HEADER = """\
# Conda environment for `snakemake --software-deployment-method conda` on
# clusters. Generated from requirements.lock by scripts/lock_to_conda.py:
# Python from conda, every Python package pinned to exactly the versions the
# README and CI install (the lock also carries their hashes).
channels:
  - conda-forge
  - nodefaults
dependencies:
  - python=3.11
  - pip
  - pip:
      - --no-deps
"""


def pins(lock: Path) -> list[str]:
    found = []
    for line in lock.read_text().splitlines():
        if "==" in line and not line.startswith((" ", "#")):
            found.append(line.split(";")[0].rstrip(" \\"))
    return sorted(found, key=str.lower)


def main() -> None:
    lines = [f"      - {p}" for p in pins(ROOT / "envs" / "requirements.lock")]
    lines.append("      - -e ..")
    (ROOT / "envs" / "biocodes.yaml").write_text(HEADER + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
