"""Generate a repository of N tiny images (PNG and TIFF) for scale runs.

    .venv/bin/python benchmarks/tiny_repo.py DIR [N]
then run the workflow over it, e.g. with a config whose roots point at DIR.
The images are the ones benchmarks/run.py measures (its ``write_tiny``).
"""

import sys
from pathlib import Path

from run import write_tiny


def main() -> None:
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000
    write_tiny(Path(sys.argv[1]), n)
    print(f"{n} images under {sys.argv[1]}")


if __name__ == "__main__":
    main()
