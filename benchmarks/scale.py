"""Repository scale: a night's cost against the floor, and the merge at 1M.

    .venv/bin/python benchmarks/scale.py [--images N] [--merge-images M]
        [--skip-repo] [--skip-merge] [--data DIR] [--baseline SRC]
        [--steps first,no-change,1pct,similar]

Two measurements, each printed as ratios against a baseline measured in the
same run (never a timed test):

* **Repository**: N generated small images (default 20,000: nested folders of
  PNG, TIFF and small OME-Zarr stores). The workflow's first run (images/s),
  then a no-change rerun and a rerun with 1% of the files rewritten, each
  divided by the floor: a stat of every file plus ``snakemake -n``.
* **Merge**: the catalogue merge alone on a synthetic catalogue of M images
  (default 1,000,000) x 1.2 scenes, built directly as shard states (no image
  files): the first merge, a no-change merge and a 1%-changed merge (new
  codes, views and mtimes for 1% of the images, spread over every shard),
  each in a fresh process, with time and peak RSS. ``--baseline SRC`` runs the same
  merges with another checkout's ``src`` (e.g. the code before a change).
  The states are built once per M under ``--data`` (numpy, shard by shard:
  both copies in 17 s at 1M, 6 min and 614 MiB at 10M under load 3-10);
  ``--steps`` picks the steps to run (without ``first``, the merges go on
  from the catalogue already there; ``--steps ""`` only builds).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable

# ------------------------------------------------------- synthetic catalogue
#
# Built with numpy, shard by shard: a code's body is a counter-based hash of
# (seed, field, row), so any scene's code (a copy's source in another shard)
# is computed where it is needed, never held for the whole repository.

#: base32 alphabet of ISCC codes (RFC 4648, no padding)
B32 = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", dtype=np.uint8)
HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
GOLDEN = np.uint64(0x9E3779B97F4A7C15)
#: fields of :func:`_bodies`, each its own stream of random bodies
RAW, DATA, INSTANCE, MIXED, VIEW = range(5)
FRESH = 8  # added to a field: the body after the image changed


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: uint64 counters to independent random words
    (multiplication wraps modulo 2**64)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _bodies(seed: int, field: np.ndarray | int, rows: np.ndarray, nbytes: int):
    """Random code bodies (``len(rows)`` x ``nbytes`` uint8) of ``rows`` in a
    ``field`` (one per row, or one for all): the same row and field always
    give the same body, so a body is computed where it is needed."""
    words = nbytes // 8
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps, as meant
        key = np.asarray(field, dtype=np.uint64) + np.uint64(seed) * np.uint64(64)
        base = _mix(key * GOLDEN + np.uint64(1))
        counter = rows.astype(np.uint64)[:, None] * np.uint64(words)
        counter = counter + np.arange(words, dtype=np.uint64)
        x = _mix(counter * GOLDEN + np.reshape(base, (-1, 1)))
    return x.view(np.uint8).reshape(len(rows), nbytes)


def b32(raw: np.ndarray) -> np.ndarray:
    """Base32 (RFC 4648, no padding) of each row of ``raw`` (n x L uint8),
    as ASCII bytes (n x ceil(8L/5)): ``base64.b32encode(row).rstrip(b"=")``."""
    n, length = raw.shape
    padded = np.zeros((n, -(-length // 5) * 5), dtype=np.uint64)
    padded[:, :length] = raw
    groups = padded.reshape(n, padded.shape[1] // 5, 5)
    value = np.zeros(groups.shape[:2], dtype=np.uint64)
    for j in range(5):
        value = (value << np.uint64(8)) | groups[:, :, j]
    shifts = np.arange(35, -1, -5, dtype=np.uint64)
    digits = (value[:, :, None] >> shifts) & np.uint64(31)
    return B32[digits.reshape(n, 8 * value.shape[1])[:, : -(-length * 8 // 5)]]


def _strings(fixed: np.ndarray):
    """An Arrow string array from rows of fixed-width ASCII (n x W uint8)."""
    import pyarrow as pa

    n, width = fixed.shape
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    data = np.ascontiguousarray(fixed)
    return pa.Array.from_buffers(
        pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    )


def _codes(head: bytes, bodies: np.ndarray):
    """ISCC codes (``ISCC:`` + base32 of header and body) as an Arrow array."""
    raw = np.empty((len(bodies), len(head) + bodies.shape[1]), dtype=np.uint8)
    raw[:, : len(head)] = np.frombuffer(head, dtype=np.uint8)
    raw[:, len(head) :] = bodies
    text = b32(raw)
    out = np.empty((len(text), 5 + text.shape[1]), dtype=np.uint8)
    out[:, :5] = np.frombuffer(b"ISCC:", dtype=np.uint8)
    out[:, 5:] = text
    return _strings(out)


def _decimal(values: np.ndarray, width: int) -> np.ndarray:
    """Zero-padded decimal ASCII of values below 10**width (n x width)."""
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return (values[:, None] // powers % 10 + ord("0")).astype(np.uint8)


def _paths(index: np.ndarray):
    """Image paths ``d{i // 1000:04d}/img{i:07d}.tif`` as an Arrow array."""
    import pyarrow as pa

    if len(index) and index.max() >= 10**7:  # wider numbers: not fixed width
        return pa.array([f"d{i // 1000:04d}/img{i:07d}.tif" for i in index.tolist()])
    out = np.empty((len(index), 20), dtype=np.uint8)
    out[:, 0] = ord("d")
    out[:, 1:5] = _decimal(index // 1000, 4)
    out[:, 5:9] = np.frombuffer(b"/img", dtype=np.uint8)
    out[:, 9:16] = _decimal(index, 7)
    out[:, 16:] = np.frombuffer(b".tif", dtype=np.uint8)
    return _strings(out)


def _image_ids(images: int) -> np.ndarray:
    """``manifest.image_id`` of every image as its 64-bit value (the id is
    its 16 hex digits; ``manifest.shard_of`` takes it modulo the shards)."""
    import hashlib

    out = np.empty(images, dtype=">u8")
    step = 1 << 20
    for a in range(0, images, step):
        digests = b"".join(
            hashlib.sha256(b"repo\0d%04d/img%07d.tif" % (i // 1000, i)).digest()[:8]
            for i in range(a, min(a + step, images))
        )
        out[a : a + step] = np.frombuffer(digests, dtype=">u8")
    return out.astype(np.uint64)


def _hex_ids(ids: np.ndarray):
    """Image ids (uint64) as their 16 lowercase hex digits, an Arrow array."""
    raw = ids.astype(">u8").view(np.uint8).reshape(len(ids), 8)
    out = np.empty((len(ids), 16), dtype=np.uint8)
    out[:, 0::2] = HEX[raw >> 4]
    out[:, 1::2] = HEX[raw & 15]
    return _strings(out)


@functools.lru_cache(maxsize=1)
def _repository(images: int, shards: int, seed: int) -> dict:
    """What every copy of a synthetic repository shares: image ids, shards,
    scene counts, failures, and which scenes copy which (exact and near)."""
    rng = np.random.default_rng(seed)
    ids = _image_ids(images)
    shard = (ids % np.uint64(shards)).astype(np.int64)
    order = np.argsort(shard, kind="stable")  # by shard, then by index (path)
    bounds = np.searchsorted(shard[order], np.arange(shards + 1))
    n_scenes = rng.choice(np.array([1, 2], dtype=np.int8), images, p=[0.8, 0.2])
    first = np.zeros(images + 1, dtype=np.int64)
    np.cumsum(n_scenes, out=first[1:])
    total = int(first[-1])
    failed = rng.random(images) < 0.01
    draw = rng.random(images)  # an image changes where draw < changed
    # copies: targets and sources are scenes of images that did not fail,
    # a source is never a target itself (its code is its own)
    live = np.flatnonzero(np.repeat(~failed, n_scenes))
    copies = total // 200
    targets = rng.choice(live, min(2 * copies, len(live)), replace=False)
    is_target = np.zeros(total, dtype=bool)
    is_target[targets] = True
    sources = rng.choice(live, len(targets))
    while len(live) > len(targets) and is_target[sources].any():
        again = is_target[sources]
        sources[again] = rng.choice(live, int(again.sum()))
    kind = np.zeros(len(targets), dtype=np.int8)  # 0 exact, 1 near
    kind[copies:] = 1
    # near copies: 1-19 distinct bits of the Data-Code, 1-5 of ISCC-MIXED
    near = int((kind == 1).sum())
    data_bits = rng.integers(1, 20, near)
    mixed_bits = rng.integers(1, 6, near)
    data_mask = _bit_masks(rng, data_bits, 256)
    mixed_mask = _bit_masks(rng, mixed_bits, 64)
    by_target = np.argsort(targets)
    return {
        "ids": ids,
        "order": order,
        "bounds": bounds,
        "n_scenes": n_scenes,
        "first": first,
        "failed": failed,
        "draw": draw,
        "targets": targets[by_target],
        "sources": sources[by_target],
        "kind": kind[by_target],
        "near_row": np.cumsum(kind, dtype=np.int64)[by_target] - 1,
        "data_mask": data_mask,
        "mixed_mask": mixed_mask,
    }


def _bit_masks(rng: np.random.Generator, bits: np.ndarray, width: int):
    """Per row, a mask of ``bits[row]`` distinct random bits of ``width``."""
    mask = np.zeros((len(bits), width // 8), dtype=np.uint8)
    for start in range(0, len(bits), 4096):
        chunk = bits[start : start + 4096]
        picks = np.argsort(rng.random((len(chunk), width)), axis=1)
        keep = np.arange(width) < chunk[:, None]
        rows = np.repeat(np.arange(len(chunk)), chunk) + start
        chosen = picks[keep]
        np.bitwise_or.at(
            mask, (rows, chosen // 8), (1 << (chosen % 8)).astype(np.uint8)
        )
    return mask


def _scene_codes(repo: dict, seed: int, scene: np.ndarray, fresh: np.ndarray):
    """Data-, Instance-, ISCC-MIXED bodies and the 2 view bodies of scenes
    (global scene numbers), with the copies applied; ``fresh`` rows take the
    bodies of their changed pixels instead."""
    field = np.where(fresh, FRESH, 0)
    # a copy takes its source's original bodies (flipped bits for near ones)
    at = np.searchsorted(repo["targets"], scene).clip(max=len(repo["targets"]) - 1)
    copy = (repo["targets"][at] == scene) & ~fresh if len(repo["targets"]) else None
    source = scene.copy()
    if copy is not None:
        source[copy] = repo["sources"][at[copy]]
        field = np.where(copy, 0, field)
    data = _bodies(seed, DATA + field, source, 32)
    instance = _bodies(seed, INSTANCE + field, source, 32)
    mixed = _bodies(seed, MIXED + field, source, 8)
    views = [_bodies(seed, VIEW + field, 2 * source + v, 8) for v in range(2)]
    if copy is not None:
        near = copy & (repo["kind"][at] == 1)
        rows = repo["near_row"][at[near]]
        data[near] ^= repo["data_mask"][rows]
        mixed[near] ^= repo["mixed_mask"][rows]
        # a near copy has other bytes: its own instance and views
        instance[near] = _bodies(seed, INSTANCE, scene[near], 32)
        for v in range(2):
            views[v][near] = _bodies(seed, VIEW, 2 * scene[near] + v, 8)
    return data, instance, mixed, views


def _heads() -> dict[str, bytes]:
    import iscc_core as ic

    return {
        "data": ic.encode_header(ic.MT.DATA, 0, 0, ic.encode_length(ic.MT.DATA, 256)),
        "instance": ic.encode_header(
            ic.MT.INSTANCE, 0, 0, ic.encode_length(ic.MT.INSTANCE, 256)
        ),
        "mixed": ic.encode_header(
            ic.MT.CONTENT, ic.ST_CC.MIXED, 0, ic.encode_length(ic.MT.CONTENT, 64)
        ),
        "image": ic.encode_header(
            ic.MT.CONTENT, ic.ST_CC.IMAGE, 0, ic.encode_length(ic.MT.CONTENT, 64)
        ),
        # ISCC-SUM: Data- and Instance-Code units of 128 bits each
        "sum": bytes([0x57, 0x00]),
    }


def _constant(value: object, n: int, type_) -> object:
    import pyarrow as pa

    return (
        pa.repeat(pa.scalar(value, type_), n)
        if value is not None
        else pa.nulls(n, type_)
    )


def _shard_tables(repo: dict, k: int, seed: int, changed: float) -> dict:
    """The rows of shard ``k``'s tables, as Arrow tables in their schemas,
    already sorted by their keys (images by path, the rest by image id)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from biocodes.repository.tables import SCHEMAS, SHARD_TABLES

    heads = _heads()
    index = repo["order"][repo["bounds"][k] : repo["bounds"][k + 1]]  # ascending
    n = len(index)
    ids = _hex_ids(repo["ids"][index])
    paths = _paths(index)
    moved = repo["draw"][index] < changed
    failed = repo["failed"][index]
    counts = repo["n_scenes"][index].astype(np.int64)
    S, I32, I64 = pa.string(), pa.int32(), pa.int64()
    ok = ~failed
    raw = _bodies(seed, np.where(moved, RAW + FRESH, RAW), index, 32)
    images = {
        "image_id": ids,
        "root": _constant("repo", n, S),
        "path": paths,
        "size": pa.array(4096 + index),
        "mtime_ns": pa.array(10**18 + index + np.where(moved, 10**9, 0)),
        "format": pa.array(np.where(ok, "tiff", None).tolist(), S)
        if failed.any()
        else _constant("tiff", n, S),
        "scene_count": pa.array(np.where(ok, counts, 0).astype(np.int32)),
        "iscc_code": _with_nulls(_codes(heads["sum"], raw), failed),
        "datahash": _with_nulls(_constant("x", n, S), failed),
        "status": pa.array(np.where(ok, "ok", "error").tolist(), S),
        "error": _with_nulls(_constant("truncated", n, S), ok),
        "settings_key": _constant("k", n, S),
        "worker": _constant("node", n, S),
        "run_id": _constant("run0", n, S),
    }
    # errors: one per failed image
    # scenes, views and errors are sorted by image id: take images in that order
    by_id = np.argsort(repo["ids"][index], kind="stable")
    bad = by_id[failed[by_id]]
    bad_paths = paths.take(pa.array(bad))
    errors = {
        "image_id": ids.take(pa.array(bad)),
        "path": bad_paths,
        "stage": _constant("read", len(bad), S),
        "run_id": _constant("run0", len(bad), S),
        "error_type": _constant("truncated", len(bad), S),
        "message": pc.binary_join_element_wise(
            bad_paths, _constant(": truncated", len(bad), S), ""
        ),
    }
    # scenes of the images that did not fail, in image order
    good = by_id[ok[by_id]]
    per = counts[good]
    row_image = np.repeat(good, per)  # row in this shard's images
    within = np.arange(int(per.sum())) - np.repeat(np.cumsum(per) - per, per)
    scene = repo["first"][index[row_image]] + within
    data, instance, mixed, views = _scene_codes(repo, seed, scene, moved[row_image])
    sums = np.concatenate([data[:, :16], instance[:, :16]], axis=1)
    m = len(scene)
    take = pa.array(row_image)
    scenes = {
        "image_id": ids.take(take),
        "path": paths.take(take),
        "scene_index": pa.array(within.astype(np.int32)),
        "scene_name": pa.array(np.where(within == 0, "s0", "s1").tolist(), S),
        **{f"size_{a}": _constant(1, m, I64) for a in "tcz"},
        "size_y": _constant(64, m, I64),
        "size_x": _constant(64, m, I64),
        "dtype": _constant("uint16", m, S),
        "planes": _constant(1, m, I64),
        "nbytes": _constant(8192, m, I64),
        "iscc_code": _codes(heads["sum"], sums),
        "data_code": _codes(heads["data"], data),
        "instance_code": _codes(heads["instance"], instance),
        "iscc_mixed": _codes(heads["mixed"], mixed),
        "status": _constant("ok", m, S),
    }
    # two views per scene, (image, scene, view) in order
    vtake = pa.array(np.repeat(np.arange(m), 2))
    both = np.stack(views, axis=1).reshape(2 * m, 8)
    view_rows = {
        "image_id": scenes["image_id"].take(vtake),
        "scene_index": scenes["scene_index"].take(vtake),
        "view_index": pa.array(np.tile(np.array([0, 1], dtype=np.int32), m)),
        "strategy": _constant("mip", 2 * m, S),
        "t": _constant(0, 2 * m, I64),
        "channels": pa.ListArray.from_arrays(
            pa.array(np.arange(2 * m + 1, dtype=np.int32)),
            _constant(0, 2 * m, I32),
        ),
        "iscc_image": _codes(heads["image"], both),
    }
    given = {"images": images, "scenes": scenes, "views": view_rows, "errors": errors}
    out = {}
    for name in SHARD_TABLES:
        schema = SCHEMAS[name]
        columns = given.get(name, {})
        rows = len(next(iter(columns.values()))) if columns else 0
        out[name] = pa.table(
            [columns.get(f.name, pa.nulls(rows, f.type)) for f in schema], schema=schema
        )
    return out


def _with_nulls(array, null: np.ndarray):
    """``array`` with nulls where ``null`` is set."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not null.any():
        return array
    return pc.if_else(pa.array(null), pa.nulls(len(array), array.type), array)


def synthetic_states(
    out: Path, images: int, shards: int, seed: int = 0, changed: float = 0.0
) -> None:
    """Shard states of ``images`` images x 1.2 scenes (2 views each, 1% failed,
    0.5% exact and 0.5% near copies of scenes anywhere in the repository),
    as the fingerprint jobs write them, one shard at a time (memory bounded
    by a shard). With ``changed``, that fraction of the images, spread over
    every shard, has new codes, views and mtimes."""
    from concurrent.futures import ThreadPoolExecutor

    import pyarrow.parquet as pq

    from biocodes.repository.codeindex import write_shard_index
    from biocodes.repository.tables import sorted_batches

    def write(k: int, tables: dict) -> None:
        # as a shard job writes them (write_atomic of sorted_batches: a
        # partition the merge links), without its fsync (bench_merge marks
        # the states done once all are written)
        for name, table in tables.items():
            path = out / str(k) / f"{name}.parquet"
            batches = sorted_batches(name, table)
            with pq.ParquetWriter(
                path, batches.schema, compression="zstd", write_statistics=True
            ) as writer:
                for batch in batches:
                    writer.write_batch(batch)
        write_shard_index(out / str(k))  # its code index part, as a job does

    repo = _repository(images, shards, seed)
    # Parquet writes release the GIL: one shard is written while the next
    # is made (two at most in flight, so memory stays a few shards)
    with ThreadPoolExecutor(1) as pool:
        pending = []
        for k in range(shards):
            (out / str(k)).mkdir(parents=True, exist_ok=True)
            pending.append(pool.submit(write, k, _shard_tables(repo, k, seed, changed)))
            if len(pending) > 2:
                pending.pop(0).result()
        for job in pending:
            job.result()


def synthetic_run_id(run: int) -> str:
    """The run id of the benchmark's ``run``-th merge."""
    return f"2026120{run}T000000Z"


def synthetic_changes(states: Path, changed: Path, shards: int, run: int) -> None:
    """What each shard job of ``changed`` (the night after ``states``)
    writes beside its tables: its partition's changes against its last
    tables (:func:`biocodes.repository.catalogue.write_partition_changes`),
    for the ``run``-th merge."""
    from biocodes.repository.catalogue import write_partition_changes
    from biocodes.repository.tables import file_identity, read_table

    for k in range(shards):
        last, now = states / str(k), changed / str(k)
        both = [
            {n: read_table(d / f"{n}.parquet", n) for n in ("images", "scenes")}
            for d in (last, now)
        ]
        source = {n: file_identity(last / f"{n}.parquet") for n in ("images", "scenes")}
        shutil.rmtree(now / "partition_changes", ignore_errors=True)
        write_partition_changes(now, source, *both, synthetic_run_id(run))


def synthetic_manifest(path: Path, run: int) -> None:
    """A manifest holding only the run id and start time the merge reads."""
    import pyarrow as pa

    from biocodes.repository.tables import write_atomic

    meta = {"run_id": synthetic_run_id(run), "started": f"2026-12-0{run}T00:00:00"}
    write_atomic(
        pa.table({"image_id": pa.array([], pa.string())}).replace_schema_metadata(meta),
        path,
    )


#: the peak memory of the process itself: VmHWM is reset by exec, while
#: ru_maxrss of a child carries its parent's high-water mark across exec
PEAK = """
def peak_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
"""

MERGE_CHILD = (
    PEAK
    + """
import inspect, json, sys, time
from pathlib import Path
from biocodes.repository.catalogue import merge_run
states, out, manifest, shards, config, threads = sys.argv[1:7]
dirs = [Path(states) / str(k) for k in range(int(shards))]
# a checkout from before the threads of the near search: it has none
takes = "threads" in inspect.signature(merge_run).parameters
kw = {"threads": int(threads)} if takes else {}
t0 = time.perf_counter()
run = merge_run(dirs, out, json.loads(config), manifest, **kw)
dt = time.perf_counter() - t0
print(json.dumps({"seconds": dt, "rss_mib": peak_mib(),
    "images": run["images"], "scenes": run["scenes"],
    "added": run["images_added"], "changed": run["images_changed"]}))
"""
)

NEAR_CHILD = (
    PEAK
    + """
import json, sys, time
from pathlib import Path
import numpy as np
from biocodes.repository.candidates import near_pairs, packed_codes
new, old = Path(sys.argv[1]) / "_index", Path(sys.argv[2]) / "_index"
threads = int(sys.argv[3])
out = {"seconds": 0.0, "codes": 0, "pairs": 0}
none = np.zeros((0, 1), np.uint64)
for column, limit in (("data_code", 24), ("iscc_mixed", 8)):
    t0 = time.perf_counter()  # all the merge does for one near column
    (now,), before = packed_codes(new, column), packed_codes(old, column)
    first, _number, pairs = near_pairs(now, limit, before, (none, none), threads)
    out["seconds"] += time.perf_counter() - t0
    out["codes"] += len(first)
    out["pairs"] += pairs.shape[1]
    del now, before
out["rss_mib"] = peak_mib()
print(json.dumps(out))
"""
)

SIMILAR_CHILD = (
    PEAK
    + """
import json, sys, time
from biocodes.repository.similar import similar
catalogue, codes = sys.argv[1], sys.argv[2:]
times, found = [], []
for code in codes:
    t0 = time.perf_counter()
    found.append(len(similar(catalogue, code)))
    times.append(time.perf_counter() - t0)
print(json.dumps({"first": times[0], "warm": sorted(times[1:])[len(times[1:]) // 2]
    if len(times) > 1 else None, "rss_mib": peak_mib(), "found": found}))
"""
)

BUILD_CHILD = (
    PEAK
    + """
import json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from scale import synthetic_changes, synthetic_states
base, images, shards = Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
t0 = time.perf_counter()
synthetic_states(base / "states", images, shards)
t1 = time.perf_counter()
synthetic_states(base / "states-1pct", images, shards, changed=0.01)
# as its shard jobs would: the 1% night (the third merge) after "states"
synthetic_changes(base / "states", base / "states-1pct", shards, 3)
print(json.dumps({"states": t1 - t0, "states-1pct": time.perf_counter() - t1,
    "rss_mib": peak_mib()}))
"""
)


def child(src: Path, script: str, *args: object) -> dict:
    """Run ``script`` in a fresh interpreter (its own peak memory)."""
    proc = subprocess.run(
        [PY, "-c", script, *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(src)},
    )
    if proc.returncode:
        sys.exit(f"benchmark step failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


#: threads of the merge's near-duplicate search (the workflow's default
#: ``threads``; ``--merge-threads``)
MERGE_THREADS = 2


def merge_child(
    src: Path,
    states: Path,
    out: Path,
    manifest: Path,
    shards: int,
    config: dict,
    threads: int = MERGE_THREADS,
):
    return child(
        src, MERGE_CHILD, states, out, manifest, shards, json.dumps(config), threads
    )


def figure(measure: str, step: str, images: int, seconds: float, rss: float) -> str:
    """One figure as a JSON line, for comparing runs mechanically."""
    return json.dumps(
        {
            "measure": measure,
            "step": step,
            "images": images,
            "seconds": round(seconds, 4),
            "rss_mib": round(rss, 1),
        }
    )


def query_codes(catalogue: Path, count: int) -> list[str]:
    """Data-Codes of ``count`` scenes spread over the catalogue, read from a
    few row groups only (the parent stays small)."""
    import pyarrow.parquet as pq

    from biocodes.repository.codeindex import table_path

    path = table_path(catalogue, "scenes")
    files = sorted(path.glob("*.parquet")) if path.is_dir() else [path]
    codes = []
    for k in range(count):
        f = pq.ParquetFile(files[k % len(files)])
        group = (k * 7919) % f.num_row_groups
        column = f.read_row_group(group, columns=["data_code"])["data_code"]
        codes.append(column[(k * 104729) % len(column)].as_py())
    return codes


#: the steps of the merge benchmark, in the order they run
STEPS = ("first", "no-change", "1pct", "similar")
#: steps run only when asked for (``near``: the near-duplicate search of the
#: 1% night's new codes alone, e.g. where the merges ran without it)
EXTRA_STEPS = ("near",)


def bench_near(
    src: Path,
    results: Path,
    images: int,
    figures: list[str],
    threads: int = MERGE_THREADS,
) -> list[str]:
    """All that near-duplicate search adds to a 1%-changed night's merge,
    on the indexes of the last two catalogues, in a fresh process: both
    indexes' Data-Codes and ISCC-MIXED read, their distinct codes, which
    are new, and the new ones searched against all (as the merge does when
    last night's pairs are known; none are here: a merge without near
    search left none)."""
    versions = sorted((results / "catalogue.versions").iterdir())
    r = child(src, NEAR_CHILD, versions[-1], versions[-2], threads)
    figures.append(
        figure("near search", "1% changed", images, r["seconds"], r["rss_mib"])
    )
    return [
        f"near search of the 1% night's new codes: {r['seconds']:.1f} s, peak RSS "
        f"{r['rss_mib']:.0f} MiB ({r['codes']:,} distinct codes, {r['pairs']:,} pairs)"
    ]


def bench_merge(
    data: Path,
    images: int,
    baseline: Path | None,
    queries: int = 11,
    hnsw: bool = False,
    steps: tuple[str, ...] = STEPS,
    config: dict | None = None,
    threads: int = MERGE_THREADS,
) -> tuple[list[str], list[str]]:
    """Build the synthetic states once (``done`` marks them built), then run
    the chosen ``steps``: without ``first``, the merges go on from the
    catalogue an earlier run left in ``results-*``."""
    shards = max(1, images // 8000)
    config = config or {}
    base = data / f"merge-{images}"
    states, states2 = base / "states", base / "states-1pct"
    if not (base / "done").exists():
        shutil.rmtree(base, ignore_errors=True)
        base.mkdir(parents=True)
        t0 = time.perf_counter()
        r = child(
            ROOT / "src", BUILD_CHILD, Path(__file__).parent, base, images, shards
        )
        (base / "done").write_text("")
        print(
            f"built {images:,} images in {time.perf_counter() - t0:.0f} s "
            f"(states {r['states']:.0f} s, states-1pct {r['states-1pct']:.0f} s), "
            f"peak RSS {r['rss_mib']:.0f} MiB",
            file=sys.stderr,
        )
    lines, figures = [], []
    for label, src in (("before", baseline), ("after", ROOT / "src")):
        if src is None or not steps:
            continue
        results = base / f"results-{label}"
        if "first" in steps:
            shutil.rmtree(results, ignore_errors=True)
        results.mkdir(exist_ok=True)
        for run, (step, what, st) in enumerate(
            (
                ("first", "first", states),
                ("no-change", "no-change", states),
                ("1pct", "1% changed", states2),
            ),
            1,
        ):
            if step not in steps:
                continue
            synthetic_manifest(results / "m.parquet", run)
            r = merge_child(
                src,
                st,
                results / "catalogue",
                results / "m.parquet",
                shards,
                config,
                threads,
            )
            lines.append(
                f"merge {label:6s} {what:10s}: {r['seconds']:6.1f} s, peak RSS "
                f"{r['rss_mib']:6.0f} MiB ({r['images']:,} images, "
                f"{r['scenes']:,} scenes, {r['changed']:,} changed)"
            )
            figures.append(
                figure(
                    "merge" if label == "after" else "merge (before)",
                    what,
                    images,
                    r["seconds"],
                    r["rss_mib"],
                )
            )
        catalogue = results / "catalogue"
        if "near" in steps and label == "after":
            lines += bench_near(src, results, images, figures, threads)
        if "similar" not in steps:
            continue
        codes = query_codes(catalogue, queries if label == "after" else 2)
        r = child(src, SIMILAR_CHILD, catalogue, *codes)
        warm = r["warm"] if r["warm"] is not None else r["first"]
        lines.append(
            f"similar {label:6s} by code: first query {r['first']:.3f} s, then "
            f"{warm:.3f} s per query (median of {len(codes) - 1}), peak RSS "
            f"{r['rss_mib']:.0f} MiB, matches {r['found']}"
        )
        name = "similar" if label == "after" else "similar (before)"
        figures.append(figure(name, "by code, first", images, r["first"], r["rss_mib"]))
        figures.append(figure(name, "by code, warm", images, warm, r["rss_mib"]))
        if label == "after" and hnsw:
            lines += bench_hnsw(catalogue, images, figures)
    return lines, figures


HNSW_CHILD = (
    PEAK
    + """
import json, sys, time
import numpy as np
from usearch.index import Index
from biocodes.repository.codeindex import open_parts, search_words
words = np.concatenate([p.words for p in open_parts(sys.argv[1], "data_code")])
packed = words.astype(">u8").view(np.uint8).reshape(len(words), -1)
t0 = time.perf_counter()
index = Index(ndim=256, metric="hamming", dtype="b1")
index.add(np.arange(len(words)), packed)
build = time.perf_counter() - t0
rng = np.random.default_rng(0)
queries = rng.choice(len(words), 100, replace=False)
out = {"build": build, "rss_mib": peak_mib(), "n": len(words)}
t0 = time.perf_counter()
exact = [search_words(words, words[q], k=10)[1] for q in queries]
out["exact_s"] = (time.perf_counter() - t0) / len(queries)
for ef in (None, 1024):
    if ef:
        index.expansion_search = ef
    t0 = time.perf_counter()
    found = index.search(packed[queries], 10)
    out[f"hnsw_s_{ef}"] = (time.perf_counter() - t0) / len(queries)
    hits = 0
    for k, q in enumerate(queries):
        got = np.sort(found.distances[k].astype(np.int64))
        want = np.sort(exact[k])
        # recall@10 by distance (ties are interchangeable): the true
        # distances the answer holds
        hits += int(np.minimum(np.bincount(got, minlength=257),
                               np.bincount(want, minlength=257)).sum())
    out[f"recall_{ef}"] = hits / (10 * len(queries))
print(json.dumps(out))
"""
)


def bench_hnsw(catalogue: Path, images: int, figures: list[str]) -> list[str]:
    """The exact search beside usearch's HNSW (only if usearch is installed:
    it is not a dependency), recall@10 counted by distance (ties)."""
    try:
        import usearch  # noqa: F401
    except ImportError:
        return ["hnsw: usearch not installed, not compared"]
    r = child(ROOT / "src", HNSW_CHILD, catalogue)
    figures.append(figure("hnsw build", "first", images, r["build"], r["rss_mib"]))
    return [
        f"hnsw (usearch) over {r['n']:,} Data-Codes: build {r['build']:.0f} s, "
        f"peak RSS {r['rss_mib']:.0f} MiB; exact top-10 {r['exact_s'] * 1e3:.1f} ms "
        f"per query; HNSW default ef {r['hnsw_s_None'] * 1e3:.2f} ms, recall@10 "
        f"{r['recall_None']:.3f}; ef=1024 {r['hnsw_s_1024'] * 1e3:.2f} ms, recall@10 "
        f"{r['recall_1024']:.3f}"
    ]


# -------------------------------------------------------------- repository


def write_repo(out: Path, n: int) -> None:
    """n small images in nested folders: 45% PNG, 45% TIFF, 10% OME-Zarr."""
    import tifffile
    from PIL import Image

    from biocodes import synth

    rng = np.random.default_rng(0)
    for i in range(n):
        sub = out / f"p{i // 2000:02d}" / f"d{i // 200:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 255, (16, 16), dtype=np.uint8)
        if i % 10 == 9:
            synth.write_ome_zarr(
                sub / f"img{i:06d}.ome.zarr",
                pixels.reshape(1, 1, 1, 16, 16),
                zarr_format=2,
            )
        elif i % 2:
            tifffile.imwrite(sub / f"img{i:06d}.tif", pixels)
        else:
            Image.fromarray(pixels).save(sub / f"img{i:06d}.png")


#: the checkout whose workflow runs (--baseline-tree: another one's, with
#: its own src/ first on the path)
TREE = {"root": ROOT}


def _no_scontrol() -> str:
    """A directory with a stand-in ``scontrol`` that fails at once: on a
    machine with SLURM's client and no controller, the SLURM executor plugin
    waits ~9 s for ``scontrol`` at every Snakemake start, which would add the
    same 9 s to the floor and to every run (see docs/guide.md, "Running on
    SLURM"). BIOCODES_BENCH_SCONTROL=1 keeps the real one."""
    if os.environ.get("BIOCODES_BENCH_SCONTROL") == "1":
        return ""
    stand_in = Path(os.environ.get("TMPDIR", "/tmp"), "biocodes-bench-noslurm")
    stand_in.mkdir(exist_ok=True)
    script = stand_in / "scontrol"
    if not script.exists():
        script.write_text("#!/bin/sh\nexit 1\n")
        script.chmod(0o755)
    return f"{stand_in}:"


def _python(root: Path) -> str:
    """The checkout's own interpreter (its .venv), else this one."""
    own = root / ".venv" / "bin" / "python"
    return str(own) if root != ROOT and own.exists() else PY


def snakemake(cfg: Path, *extra: str) -> float:
    t0 = time.perf_counter()
    root = TREE["root"]
    py = _python(root)
    path = f"{_no_scontrol()}{Path(py).parent}:{os.environ['PATH']}"
    env = {**os.environ, "PATH": path}
    if root != ROOT:
        env["PYTHONPATH"] = str(root / "src")
    proc = subprocess.run(
        [
            py,
            "-m",
            "snakemake",
            "--profile",
            "profiles/default",
            "--configfile",
            str(cfg),
            *extra,
        ],
        cwd=root,
        capture_output=True,
        text=True,
        env=env,
    )
    if proc.returncode:
        sys.exit(f"snakemake {extra} failed:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t0


def floor(cfg: Path, repo: Path) -> float:
    t0 = time.perf_counter()
    for dirpath, _dirs, files in os.walk(repo):
        for f in files:
            os.stat(os.path.join(dirpath, f))
    stat = time.perf_counter() - t0
    return stat + snakemake(cfg, "-n")


#: no-change nights per checkout after the first ones, taken alternately
#: with the baseline's (the load moves: each is divided by its own floor)
QUIET_NIGHTS = 3


def bench_repo(data: Path, n: int, extra: dict) -> list[str]:
    """The workflow over ``n`` generated images: a first run, the night
    after it, no-change nights and a 1%-changed night, each against the
    floor. With ``--baseline-tree`` (``TREE``), that checkout is measured
    too, in the same invocation: its first run, then this checkout's, then
    each one's no-change nights taken alternately (each over its own
    results), so both see the same load."""
    repo = data / f"repo-{n}"
    if not (data / f"repo-{n}.done").exists():
        shutil.rmtree(repo, ignore_errors=True)
        write_repo(repo, n)
        (data / f"repo-{n}.done").write_text("")
    trees = [TREE["root"], ROOT] if TREE["root"] != ROOT else [ROOT]
    found: dict[Path, dict] = {}
    for root in trees:
        TREE["root"] = root
        work = data / f"run-{n}-{root.name}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        cfg = work / "config.yaml"
        cfg.write_text(
            json.dumps(
                {
                    "roots": {"repo": str(repo)},
                    "results": str(work / "results"),
                    "example": {"generate": False},
                    # the repository was just written: read it now, not in an hour
                    "incremental": {"settle_seconds": 0},
                    **extra,
                }
            )
        )
        first = snakemake(cfg)
        # the first night after a first run, right after it (as a first
        # run ending in the evening and the night's run)
        settle = snakemake(cfg)
        base = floor(cfg, repo)
        found[root] = {"cfg": cfg, "first": first, "settle": (settle, base)}
        found[root]["quiet"] = []
    for _ in range(QUIET_NIGHTS):
        for root in trees:
            TREE["root"] = root
            cfg = found[root]["cfg"]
            base = floor(cfg, repo)
            found[root]["quiet"].append((snakemake(cfg), base))
    files = sorted(p for p in repo.rglob("*.tif"))
    import tifffile

    for p in files[:: max(1, len(files) // max(1, n // 100))][: n // 100]:
        st = p.stat()  # new pixels (whatever an earlier benchmark left), later mtime
        tifffile.imwrite(p, 255 - tifffile.imread(p))
        os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    for root in trees:
        TREE["root"] = root
        cfg = found[root]["cfg"]
        base = floor(cfg, repo)
        found[root]["changed"] = (snakemake(cfg), base)
    lines = []
    for root in trees:
        f = found[root]
        settle, base = f["settle"]
        quiet = sorted(f["quiet"], key=lambda tb: tb[0] / tb[1])
        changed, cbase = f["changed"]
        ratios = ", ".join(f"{t:.1f} s = {t / b:.2f} x" for t, b in quiet)
        lines += [
            f"repository of {n:,} images ({root}): first run {f['first']:.0f} s "
            f"({n / f['first']:.0f} images/s)",
            f"  floor (stat of every file + snakemake -n): {base:.1f} s "
            f"(later: {', '.join(f'{b:.1f}' for _t, b in f['quiet'])} s)",
            f"  second run (the first no-change night after a first run): "
            f"{settle:.1f} s = {settle / base:.2f} x the floor",
            f"  no-change reruns (each against its own floor, sorted): {ratios}",
            f"  1% changed rerun {changed:.1f} s = {changed / cbase:.2f} x the floor",
        ]
    TREE["root"] = trees[-1]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--merge-images", type=int, default=1_000_000)
    parser.add_argument("--skip-repo", action="store_true")
    parser.add_argument("--skip-merge", action="store_true")
    parser.add_argument(
        "--hnsw", action="store_true", help="compare with usearch's HNSW if installed"
    )
    parser.add_argument("--baseline", type=Path, help="another checkout's src/")
    parser.add_argument("--data", type=Path, default=ROOT / ".cache" / "scale")
    parser.add_argument("--config", default="{}", help="JSON config overrides")
    parser.add_argument(
        "--merge-config",
        default="{}",
        help='JSON config of the synthetic merges, e.g. {"duplicates": '
        '{"near": false}} (no near search)',
    )
    parser.add_argument(
        "--merge-threads",
        type=int,
        default=MERGE_THREADS,
        help="threads of the merges' near-duplicate search (the workflow's `threads`)",
    )
    parser.add_argument(
        "--baseline-tree",
        type=Path,
        help="measure the repository part with this checkout too (before/after)",
    )
    parser.add_argument(
        "--steps",
        default=",".join(STEPS),
        help="merge benchmark steps to run, comma-separated, of "
        f"{','.join(STEPS + EXTRA_STEPS)} (none: only build the synthetic states)",
    )
    args = parser.parse_args()
    steps = tuple(s for s in args.steps.split(",") if s)
    if set(steps) - set(STEPS + EXTRA_STEPS):
        unknown = sorted(set(steps) - set(STEPS + EXTRA_STEPS))
        parser.error(f"--steps: unknown {unknown}")
    if args.baseline_tree:
        TREE["root"] = args.baseline_tree.resolve()
    lines, figures = [], []
    if not args.skip_merge:
        found = bench_merge(
            args.data,
            args.merge_images,
            args.baseline,
            hnsw=args.hnsw,
            steps=steps,
            config=json.loads(args.merge_config),
            threads=args.merge_threads,
        )
        lines += found[0]
        figures += found[1]
    if not args.skip_repo:
        lines += bench_repo(args.data, args.images, json.loads(args.config))
    print("\n".join(lines + figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
