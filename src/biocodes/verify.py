"""Re-read images and compare their pixel codes with the catalogue (``sha256sum -c``).

Repositories run this after a format migration or a storage move: every
catalogued scene must still have the same per-scene ISCC-SUM. A changed raw-file
code with equal scene codes (the file was re-written, the pixels were not) is
reported but is not a failure.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator, Mapping
from pathlib import Path


def catalogue_dir(path: str | os.PathLike) -> Path:
    """Accept a catalogue directory or the results directory holding one."""
    path = Path(path)
    return (
        path / "catalogue" if (path / "catalogue" / "images.parquet").exists() else path
    )


def recorded_roots(cat: Path) -> dict[str, str]:
    """Root label -> directory, from the config of the catalogue's last run."""
    from biocodes.catalogue import read_catalogue

    runs = read_catalogue(cat, "runs")
    if not runs:
        return {}
    config = json.loads(runs[-1].get("config") or "{}")
    roots = dict(config.get("roots", {}))
    if config.get("manifest"):
        roots["manifest"] = str(Path(config["manifest"]).parent)
    return roots


def verify(
    catalogue: str | os.PathLike,
    sample: int | None = None,
    roots: Mapping[str, str] | None = None,
    seed: int = 0,
) -> Iterator[dict]:
    """Yield ``{"path", "status" (OK / FAILED / MISSING), "detail"}`` per image."""
    from biocodes.catalogue import read_catalogue
    from biocodes.errors import as_biocode_error
    from biocodes.fingerprint import biocode

    cat = catalogue_dir(catalogue)
    where = {**recorded_roots(cat), **(roots or {})}
    images = [
        i for i in read_catalogue(cat, "images") if i["status"] in ("ok", "empty")
    ]
    if sample is not None and sample < len(images):
        images = sorted(
            random.Random(seed).sample(images, sample), key=lambda i: i["path"]
        )
    scenes: dict[str, list[str]] = {}
    for s in read_catalogue(cat, "scenes"):
        scenes.setdefault(s["image_id"], []).append(s["iscc_code"])
    for image in images:
        base = where.get(image["root"])
        shown = f"{image['root']}:{image['path']}"
        if base is None:
            yield {"path": shown, "status": "MISSING", "detail": "unknown root"}
            continue
        path = Path(base) / image["path"]
        if not path.exists():
            yield {"path": str(path), "status": "MISSING", "detail": "no such file"}
            continue
        try:
            result = biocode(path)
        except Exception as exc:
            err = as_biocode_error(str(path), exc)
            yield {"path": str(path), "status": "FAILED", "detail": str(err)}
            continue
        now = [p["iscc_code"] for p in result["parts"]]
        before = scenes.get(image["image_id"], [])
        if now != before:
            differ = [
                i
                for i in range(max(len(now), len(before)))
                if i >= len(now) or i >= len(before) or now[i] != before[i]
            ]
            detail = f"pixels differ in scene(s) {', '.join(map(str, differ))}"
            yield {"path": str(path), "status": "FAILED", "detail": detail}
        elif result["iscc_code"] != image["iscc_code"]:
            yield {
                "path": str(path),
                "status": "OK",
                "detail": "file rewritten, same pixels",
            }
        else:
            yield {"path": str(path), "status": "OK", "detail": ""}
