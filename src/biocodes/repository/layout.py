"""How many shard jobs (and catalogue partitions) a run has: a fixed count,
or one the scan decides from this run's number of images and keeps.

The scan is a checkpoint, so the workflow learns the count once the scan is
done (:func:`scan_shards`) and no job graph depends on a guess. The count is
a power of two near ``images_per_shard`` images per shard, and the previous
count is kept while it is within a factor of two of that (:func:`decide_shards`):
a first run and the next night have the same shards, so a night without
changes runs no shard job, and a growing repository re-shards rarely (a
change reads no pixels: shards take their images' rows from the catalogue,
see :func:`biocodes.repository.shard.run_shard`). The decision is recorded
in ``<results>/layout.json``. This module imports nothing heavy: every
Snakemake job parses it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

#: images per shard job aimed at by the automatic count
IMAGES_PER_SHARD = 10_000
MAX_SHARDS = 4096
#: where the scan records the run's shard count
LAYOUT_FILE = "layout.json"


def shards_for(images: int, images_per_shard: int = IMAGES_PER_SHARD) -> int:
    """The power of two of shards that keeps each near ``images_per_shard``."""
    wanted = max(1, -(-images // max(1, images_per_shard)))
    return min(MAX_SHARDS, 1 << (wanted - 1).bit_length())


def decide_shards(
    images: int,
    previous: int | None = None,
    shards: int | None = None,
    images_per_shard: int = IMAGES_PER_SHARD,
) -> int:
    """The run's shard count: ``shards`` if fixed; else the previous count
    while the ideal one for ``images`` is within a factor of two of it (so
    it does not flip between nights around a boundary), else the ideal."""
    if shards:
        return int(shards)
    ideal = shards_for(images, images_per_shard)
    if previous and previous // 2 <= ideal <= previous * 2:
        return int(previous)
    return ideal


def previous_shards(results: str | os.PathLike) -> int | None:
    """The shard count the last scan decided, if any."""
    try:
        return int(json.loads(Path(results, LAYOUT_FILE).read_text())["shards"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def record_shards(results: str | os.PathLike, shards: int, images: int) -> None:
    """Record the scan's decision (read by the workflow and the next scan)."""
    from biocodes.infra.atomic import atomic_path

    with atomic_path(Path(results, LAYOUT_FILE)) as tmp:
        tmp.write_text(json.dumps({"shards": shards, "images": images}))


def scan_shards(results: str | os.PathLike) -> int:
    """The shard count of this run, once its scan is done."""
    found = previous_shards(results)
    if found is None:
        raise FileNotFoundError(f"{Path(results, LAYOUT_FILE)}: the scan has not run")
    return found
