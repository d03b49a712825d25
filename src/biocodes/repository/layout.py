"""How many shard jobs a run has: a fixed count, or one that follows the repository.

The workflow must know its jobs before the scan (no checkpoint), so an
automatic count comes from the previous run's number of images, recorded in
``<results>/shards.json`` when a run succeeds. Counts are powers of two, so a
growing repository changes them rarely; a change reads no pixels (shards take
their images' rows from the catalogue, see :func:`biocodes.repository.shard.run_shard`).
This module imports nothing heavy: every Snakemake job parses it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

#: images per shard job aimed at by the automatic count
IMAGES_PER_SHARD = 10_000
#: shard jobs of a first run, before the repository's size is known
FIRST_RUN_SHARDS = 4
MAX_SHARDS = 4096


def shards_for(images: int, images_per_shard: int = IMAGES_PER_SHARD) -> int:
    """The power of two of shards that keeps each near ``images_per_shard``."""
    wanted = max(1, -(-images // max(1, images_per_shard)))
    return min(MAX_SHARDS, 1 << (wanted - 1).bit_length())


def shard_count(
    results: str | os.PathLike,
    shards: int | None = None,
    images_per_shard: int = IMAGES_PER_SHARD,
) -> int:
    """``shards`` if set, else the count for the last run's number of images."""
    if shards:
        return shards
    try:
        images = json.loads(Path(results, "shards.json").read_text())["images"]
    except (OSError, ValueError, KeyError, TypeError):
        return FIRST_RUN_SHARDS
    return shards_for(int(images), images_per_shard)


def record_images(results: str | os.PathLike, images: int) -> None:
    """Remember the repository's size for the next run's automatic count."""
    from biocodes.infra.atomic import atomic_path

    with atomic_path(Path(results, "shards.json")) as tmp:
        tmp.write_text(json.dumps({"images": images}))
