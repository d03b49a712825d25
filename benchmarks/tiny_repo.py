"""Generate a repository of N tiny images (PNG and TIFF) for scale runs.

    .venv/bin/python benchmarks/tiny_repo.py DIR [N]
then run the workflow over it, e.g. with a config whose roots point at DIR.
"""

import sys
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image


def main() -> None:
    out = Path(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000
    rng = np.random.default_rng(0)
    for i in range(n):
        sub = out / f"{i // 1000:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 255, (16, 16), dtype=np.uint8)
        if i % 2:
            tifffile.imwrite(sub / f"img{i:05d}.tif", pixels)
        else:
            Image.fromarray(pixels).save(sub / f"img{i:05d}.png")
    print(f"{n} images under {out}")


if __name__ == "__main__":
    main()
