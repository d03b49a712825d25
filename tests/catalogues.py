"""Real catalogues for command tests, made by the library's own steps (scan,
fingerprint, merge) in this process: no Snakemake, no dask cluster."""

from __future__ import annotations

import os
from pathlib import Path

from biocodes.repository.catalogue import merge_run
from biocodes.repository.manifest import build_manifest, read_manifest
from biocodes.repository.shard import fingerprint_image, settings_key, stamped
from biocodes.repository.tables import SHARD_TABLES, to_table, write_atomic
from biocodes.views.build import view_options


def build_catalogue(
    roots: dict[str, str | os.PathLike],
    results: Path,
    config: dict | None = None,
    views: bool = True,
) -> Path:
    """Run one complete run over ``roots`` into ``results``; returns the
    catalogue directory. The state dir is kept, so a second call is the next
    run (every image is read again, which the counts say)."""
    results.mkdir(parents=True, exist_ok=True)
    manifest = results / "manifest.parquet"
    roots = {k: str(v) for k, v in roots.items()}
    build_manifest(manifest, roots, 1)
    opts = view_options({"enabled": views}, str(results / "thumbnails"))
    key = settings_key(False, opts)
    run_id = read_run_id(manifest)
    tables: dict[str, list[dict]] = {n: [] for n in SHARD_TABLES}
    rows = read_manifest(manifest)
    for row in rows:
        result = fingerprint_image(row, False, opts, str(results))
        for name, items in stamped(result, key, run_id).items():
            tables[name].extend(items)
    state = results / "state" / "0"
    for name in SHARD_TABLES:
        write_atomic(to_table(name, tables[name]), state / f"{name}.parquet")
    cfg = {"roots": roots, "results": str(results), **(config or {})}
    merge_run([state], results / "catalogue", cfg, manifest, [{"read": len(rows)}])
    return results / "catalogue"


def read_run_id(manifest: Path) -> str:
    from biocodes.repository.catalogue import run_info

    return run_info(manifest)[0]


def catalogue_files(catalogue: Path) -> dict[str, bytes]:
    """Every table file of a catalogue (either layout), by its path inside
    it, with its bytes: what a byte-identity test compares."""
    from biocodes.repository.tables import TABLES, table_files

    root = Path(os.path.realpath(catalogue))
    return {
        str(p.relative_to(root)): p.read_bytes()
        for name in TABLES
        for p in table_files(root, name)
    }


def scale_benchmark():
    """benchmarks/scale.py as a module: its synthetic shard states are the
    merge tests' inputs, built exactly as the benchmark builds them."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "scale.py"
    spec = importlib.util.spec_from_file_location("scale", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
