"""biocodes against the raw hash limit and against iscc-bio 0.2.0, in one run.

    .venv/bin/python benchmarks/run.py [--data DIR] [--skip-iscc-bio] [--small]

Generates its data under DIR (default .cache/bench, reused when present):
the same 16-bit pixels as a ~512 MiB OME-Zarr (zarr v3, zstd, bioformats2raw
layout, which iscc-bio 0.2.0 reads) and a ~512 MiB uncompressed OME-TIFF
(Z=32 x C=2 planes of 2048x2048), a 2 GiB OME-TIFF scene for peak memory,
1,000 tiny images, and a 16-image shard for the 1-vs-2-worker comparison.
Installs iscc-bio 0.2.0 into its own venv (.cache/iscc-bio-0.2.0).

Every measurement runs in a fresh process, so peak RSS is its own. Results
are printed as ratios against baselines measured in the same run; the run
fails (exit 1) if any code differs between the raw limit, biocodes and
iscc-bio. Files are read warm from the page cache: this measures the
pipeline, not the storage.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MiB = 1 << 20
SIDE = 2048
DATA_VERSION = "5"  # bump when the generated data changes


# --------------------------------------------------------------------- data


def plane_pixels(seed: int, z: int, c: int, side: int = SIDE) -> np.ndarray:
    """A deterministic 16-bit plane as a 12-bit camera records fluorescence:
    bright smooth structures on ~3/4 of dark background (offset 100), plus 4
    bits of noise everywhere."""
    x = np.arange(side, dtype=np.float32)
    row = np.sin(x / (53 + 7 * c) + z * 0.21 + seed)
    col = np.cos(x / (71 + 5 * c) - z * 0.13)
    signal = np.maximum(np.outer(col, row), 0) ** 2
    base = (100 + 3000 * signal).astype(np.uint16)
    rng = np.random.default_rng([seed, z, c])
    return base + rng.integers(0, 16, (side, side), dtype=np.uint16)


def planes_in_walk_order(seed: int, size_z: int, size_c: int, side: int = SIDE):
    for z in range(size_z):
        for c in range(size_c):
            yield plane_pixels(seed, z, c, side)


def write_ome_tiff(path: Path, seed: int, size_z: int, size_c: int, side: int):
    import tifffile

    def pages():  # TCZYX pages in C-order: C outer, Z inner
        for c in range(size_c):
            for z in range(size_z):
                yield plane_pixels(seed, z, c, side)

    tmp = path.with_suffix(".part")
    with tifffile.TiffWriter(tmp, ome=True, bigtiff=True) as w:
        w.write(
            pages(),
            shape=(1, size_c, size_z, side, side),
            dtype=np.uint16,
            metadata={"axes": "TCZYX"},
            photometric="minisblack",
        )
    tmp.rename(path)


def write_ome_zarr(path: Path, seed: int, size_z: int, size_c: int, side: int):
    """bioformats2raw layout (series 0) with NGFF 0.5 metadata, zstd chunks of
    1024x1024: the layout both biocodes and iscc-bio 0.2.0 read."""
    import shutil

    import zarr
    from zarr.codecs import ZstdCodec

    tmp = path.with_name(path.name + ".part")
    shutil.rmtree(tmp, ignore_errors=True)
    root = zarr.open_group(str(tmp), mode="w", zarr_format=3)
    root.attrs["ome"] = {"version": "0.5", "bioformats2raw.layout": 3}
    image = root.create_group("0")
    axes = [{"name": "t", "type": "time"}, {"name": "c", "type": "channel"}]
    axes += [{"name": n, "type": "space"} for n in "zyx"]
    image.attrs["ome"] = {
        "version": "0.5",
        "multiscales": [
            {
                "name": "Image:0",
                "axes": axes,
                "datasets": [
                    {
                        "path": "0",
                        "coordinateTransformations": [
                            {"type": "scale", "scale": [1.0] * 5}
                        ],
                    }
                ],
            }
        ],
    }
    arr = image.create_array(
        "0",
        shape=(1, size_c, size_z, side, side),
        chunks=(1, 1, 1, min(side, 1024), min(side, 1024)),
        dtype="uint16",
        compressors=ZstdCodec(level=3),
    )
    for c in range(size_c):
        for z in range(size_z):
            arr[0, c, z] = plane_pixels(seed, z, c, side)
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)


def tiny_pixels(n: int):
    """The pixels of the n tiny 16x16 images, in file order."""
    rng = np.random.default_rng(0)
    for _ in range(n):
        yield rng.integers(0, 255, (16, 16), dtype=np.uint8)


def write_tiny(out: Path, n: int) -> None:
    """n tiny images, half PNG, half TIFF, 1,000 per folder."""
    import tifffile
    from PIL import Image

    for i, pixels in enumerate(tiny_pixels(n)):
        sub = out / f"{i // 1000:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        if i % 2:
            tifffile.imwrite(sub / f"img{i:05d}.tif", pixels)
        else:
            Image.fromarray(pixels).save(sub / f"img{i:05d}.png")


def make_data(data: Path, small: bool) -> dict:
    """Generate everything once; a stamp file says it is complete."""
    z = 4 if small else 32
    spec = {"version": DATA_VERSION, "small": small}
    stamp = data / "stamp.json"
    files = {
        "tiff": data / "scene.ome.tif",
        "zarr": data / "scene.ome.zarr",
        "big": data / "big.ome.tif",
        "tiny": data / "tiny",
        "shard": data / "shard",
    }
    shape = {"size_z": z, "size_c": 2, "side": SIDE}
    big = {"size_z": 8 if small else 128, "size_c": 2, "side": SIDE}
    shard_images = 16
    if stamp.exists() and json.loads(stamp.read_text()) == spec:
        return {"files": files, "shape": shape, "big": big, "shard": shard_images}
    data.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    write_ome_tiff(files["tiff"], 0, **shape)
    write_ome_zarr(files["zarr"], 0, **shape)
    write_ome_tiff(files["big"], 1, **big)
    write_tiny(files["tiny"], 100 if small else 1000)
    files["shard"].mkdir(exist_ok=True)
    for i in range(shard_images):  # 64 MiB each, half TIFF half zarr
        writer = write_ome_tiff if i % 2 else write_ome_zarr
        suffix = ".ome.tif" if i % 2 else ".ome.zarr"
        writer(files["shard"] / f"img{i:02d}{suffix}", 100 + i, 4, 2, SIDE)
    stamp.write_text(json.dumps(spec))
    print(f"generated data in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return {"files": files, "shape": shape, "big": big, "shard": shard_images}


# ------------------------------------------------------------ measurements
# Each runs in its own process (see child()) and returns a JSON-able dict.


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


REPEATS = 3  # in-process measurements keep the best of these (noisy machines)


def best_of(n: int, fn):
    """(fastest seconds, result) of n calls."""
    runs = []
    for _ in range(n):
        t = time.perf_counter()
        result = fn()
        runs.append((time.perf_counter() - t, result))
    return min(runs, key=lambda r: r[0])


def m_limit(seed: int, size_z: int, size_c: int, side: int) -> dict:
    """The hashers alone over the scene's canonical bytes held in memory,
    fed 1 MiB at a time."""
    from iscc_lib import SumHasher
    from iscc_sum import IsccSumProcessor

    chunks = []
    for plane in planes_in_walk_order(seed, size_z, size_c, side):
        raw = plane.astype(">u2").tobytes()
        chunks += [raw[i : i + MiB] for i in range(0, len(raw), MiB)]
    out: dict = {"nbytes": sum(map(len, chunks))}

    def with_iscc_sum() -> str:
        p = IsccSumProcessor()
        for chunk in chunks:
            p.update(chunk)
        return p.result(wide=True, add_units=True).iscc

    def with_iscc_lib() -> str:
        h = SumHasher()
        for chunk in chunks:
            h.update(chunk)
        return h.finalize(256, wide=True, add_units=True)["iscc"]

    def with_xxh3() -> int:  # the plane digests alone, one per plane
        import xxhash

        per_plane = side * side * 2 // MiB
        for i in range(0, len(chunks), per_plane):
            h = xxhash.xxh3_64()
            for chunk in chunks[i : i + per_plane]:
                h.update(chunk)
            h.digest()
        return len(chunks) // per_plane

    out["iscc_sum_s"], out["code"] = best_of(REPEATS, with_iscc_sum)
    out["iscc_lib_s"], out["iscc_lib_code"] = best_of(REPEATS, with_iscc_lib)
    out["xxh3_s"], out["planes"] = best_of(REPEATS, with_xxh3)
    return out


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def m_read(path: str) -> dict:
    """Reading and decoding the planes alone, and the cores that takes."""
    from biocodes.core.imagewalk import iter_planes

    def read() -> float:
        c0 = cpu_seconds()
        for _ in iter_planes(path):
            pass
        return cpu_seconds() - c0

    seconds, cpu = best_of(REPEATS, read)
    return {"seconds": seconds, "cores": cpu / seconds}


def m_scenes(path: str, overlap: bool = True) -> dict:
    """biocodes' per-scene codes (IMAGEWALK only, no raw-file code)."""
    from biocodes.core.fingerprint import fingerprint_scene
    from biocodes.sources import open_source

    def scenes() -> list[dict]:
        with open_source(path) as source:
            return [
                fingerprint_scene(source, s, overlap=overlap) for s in source.scenes
            ]

    seconds, parts = best_of(REPEATS, scenes)
    return {
        "seconds": seconds,
        "codes": [p["iscc_code"] for p in parts],
        "nbytes": sum(p["nbytes"] for p in parts),
    }


def m_biocode(path: str, plane_digests: bool = True) -> dict:
    """biocodes' full biocode: raw-file ISCC-SUM plus the per-scene codes
    (and, unless switched off to measure their cost, the plane digests)."""
    from biocodes.core.fingerprint import biocode

    seconds, r = best_of(REPEATS, lambda: biocode(path, plane_digests=plane_digests))
    return {
        "seconds": seconds,
        "codes": [p["iscc_code"] for p in r["parts"]],
        "raw": r["iscc_code"],
        "nbytes": sum(p["nbytes"] for p in r["parts"]),
    }


def m_digest_cost(path: str, rounds: int = 6) -> dict:
    """The full biocode with and without plane digests, alternating in one
    process (ABBA...), the best wall and CPU time of each: on a shared
    machine the slower runs are its noise, not the digests."""
    from biocodes.core.fingerprint import biocode

    wall: dict[bool, list[float]] = {True: [], False: []}
    cpu: dict[bool, list[float]] = {True: [], False: []}
    codes = set()
    for i in range(rounds):
        for flag in (True, False) if i % 2 == 0 else (False, True):
            c0, t0 = cpu_seconds(), time.perf_counter()
            r = biocode(path, plane_digests=flag)
            wall[flag].append(time.perf_counter() - t0)
            cpu[flag].append(cpu_seconds() - c0)
            codes.add(tuple(p["iscc_code"] for p in r["parts"]))
    return {
        "with_s": min(wall[True]),
        "without_s": min(wall[False]),
        "with_cpu": min(cpu[True]),
        "without_cpu": min(cpu[False]),
        "codes": list(codes.pop()) if len(codes) == 1 else sorted(codes),
    }


ISCC_BIO = """
import json, logging, resource, sys, time
t0 = time.perf_counter()
logging.disable(logging.CRITICAL)
from loguru import logger
logger.remove()
from iscc_bio.api import biocode
from iscc_bio.biocode import generate_biocode
from iscc_bio.imagewalk import iter_planes_bioio, iter_planes_ngff
path = sys.argv[1]
walk = iter_planes_ngff if path.endswith(".zarr") else iter_planes_bioio
t1 = time.perf_counter()
parts = generate_biocode(walk(path), bits=256)
t2 = time.perf_counter()
r = biocode(path)
t3 = time.perf_counter()
print(json.dumps({"scenes_seconds": t2 - t1, "seconds": t3 - t2, "startup": t1 - t0,
    "scene_codes": [p["iscc_code"] for p in parts],
    "codes": [p["iscc_code"] for p in r["parts"]], "raw": r["iscc_code"],
    "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def iscc_bio_python() -> Path:
    where = ROOT / ".cache" / "iscc-bio-0.2.0"
    python = where / "bin" / "python"
    if not (where / ".installed").exists():
        print("installing iscc-bio 0.2.0 into its own venv", file=sys.stderr)
        venv.create(where, with_pip=True)
        subprocess.run(
            [python, "-m", "pip", "install", "-q", "iscc-bio[readers]==0.2.0"],
            check=True,
        )
        (where / ".installed").touch()
    return python


def m_iscc_bio(path: str) -> dict:
    python = iscc_bio_python()
    t = time.perf_counter()
    proc = subprocess.run(
        [python, "-c", ISCC_BIO, path], capture_output=True, text=True, check=True
    )
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["wall"] = time.perf_counter() - t
    return out


def _warm_up(paths: list[str]) -> int:
    """Imports and reader discovery, once per worker process."""
    from biocodes.core.fingerprint import biocode

    for path in paths:
        biocode(path)
    return os.getpid()


def m_shard(root: str, workers: int) -> dict:
    """One shard through run_shard on a local cluster of ``workers``
    single-threaded worker processes, warmed up first (imports and plugin
    discovery are paid once per worker, not per image or per shard)."""
    import pyarrow.parquet as pq
    from distributed import Client, LocalCluster

    from biocodes.repository.manifest import build_manifest, read_manifest
    from biocodes.repository.shard import run_shard

    with tempfile.TemporaryDirectory() as tmp:
        manifest = Path(tmp) / "manifest.parquet"
        n = build_manifest(manifest, {"bench": root}, 1)
        paths = sorted(r["abspath"] for r in read_manifest(manifest))
        warm = paths[:2]  # a PNG and a TIFF, or a zarr and a TIFF
        with (
            LocalCluster(
                n_workers=workers, threads_per_worker=1, dashboard_address=None
            ) as cluster,
            Client(cluster) as client,
        ):
            t = time.perf_counter()
            client.run(_warm_up, warm)
            warmup = time.perf_counter() - t
            sched = Path(tmp) / "scheduler.json"
            client.write_scheduler_file(str(sched))
            cfg = {"kind": "scheduler_file", "scheduler_file": str(sched)}
            t = time.perf_counter()
            counts = run_shard(manifest, 0, Path(tmp) / "state", cfg, False)
            seconds = time.perf_counter() - t
        scenes = pq.read_table(Path(tmp) / "state" / "scenes.parquet").to_pylist()
        images = pq.read_table(Path(tmp) / "state" / "images.parquet").to_pylist()
    return {
        "seconds": seconds,
        "warmup": warmup,
        "images": n,
        "read": counts["read"],
        "failed": sum(i["status"] != "ok" for i in images),
        "codes": sorted((s["path"], s["iscc_code"]) for s in scenes),
    }


MEASURES = {
    "limit": m_limit,
    "read": m_read,
    "scenes": m_scenes,
    "biocode": m_biocode,
    "digest-cost": m_digest_cost,
    "iscc-bio": m_iscc_bio,
    "shard": m_shard,
}


def child(kind: str, *args: object, env: dict | None = None) -> dict:
    """Run one measurement in a fresh interpreter; imports are paid before
    the clock starts, as a long-running worker pays them once."""
    proc = subprocess.run(
        [sys.executable, __file__, "--child", kind, json.dumps(args)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    if proc.returncode != 0:
        sys.exit(f"measurement {kind} {args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_child(kind: str, args: str) -> None:
    import biocodes.core.fingerprint
    import biocodes.repository.shard  # noqa: F401 - imports are paid before the clock

    out = MEASURES[kind](*json.loads(args))
    out.setdefault("rss", peak_rss_mib())
    print(json.dumps(out))


# ------------------------------------------------------------------ report


def expected_tiny_codes(n: int) -> list[str]:
    """Scene codes of the tiny images, from the arrays that made them."""
    from biocodes.synth import expected_biocode

    return expected_biocode([p.reshape(1, 1, 1, 16, 16) for p in tiny_pixels(n)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / ".cache" / "bench")
    parser.add_argument("--skip-iscc-bio", action="store_true")
    parser.add_argument("--small", action="store_true", help="a quick smoke run")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(*args.child)
        return 0

    d = make_data(args.data, args.small)
    files, shape = {k: str(v) for k, v in d["files"].items()}, d["shape"]
    mismatches: list[str] = []
    rows: list[tuple[str, str, str]] = []

    def same(what: str, a: object, b: object) -> None:
        if a != b:
            mismatches.append(f"{what}: {a} != {b}")

    limit = child("limit", 0, *shape.values())
    mb = limit["nbytes"] / 1e6
    lim = mb / limit["iscc_sum_s"]
    lib = mb / limit["iscc_lib_s"]
    same("iscc-sum vs iscc-lib limit", limit["code"], limit["iscc_lib_code"])
    rows.append(("raw limit: iscc-sum from memory", f"{lim:.0f} MB/s", "1.00"))
    rows.append(
        ("raw limit: iscc-lib from memory", f"{lib:.0f} MB/s", f"{lib / lim:.2f}")
    )
    x3 = mb / limit["xxh3_s"]
    rows.append(
        (
            "plane digests alone (xxh3-64) from memory",
            f"{x3:.0f} MB/s",
            f"{lim / x3:.3f} x the limit's time",
        )
    )
    plane_mib = SIDE * SIDE * 2 / MiB

    for fmt in ("zarr", "tiff"):
        read = child("read", files[fmt])
        serial = child("scenes", files[fmt], False)
        scenes = child("scenes", files[fmt])
        full = child("biocode", files[fmt])
        same(f"{fmt} scene code vs limit", scenes["codes"], [limit["code"]])
        same(f"{fmt} serial vs overlapped", serial["codes"], scenes["codes"])
        same(f"{fmt} biocode vs scenes", full["codes"], scenes["codes"])
        r_rate = mb / read["seconds"]
        rows.append(
            (
                f"read + decode planes only, {fmt}",
                f"{r_rate:.0f} MB/s",
                f"{r_rate / lim:.2f} x limit, {read['cores']:.1f} cores busy",
            )
        )
        for name, m in (("serial", serial), ("overlapped", scenes)):
            rate = mb / m["seconds"]
            rows.append(
                (
                    f"biocodes scenes, {name}, {fmt}",
                    f"{rate:.0f} MB/s",
                    f"{rate / lim:.2f} x limit",
                )
            )
        f_rate = mb / full["seconds"]
        rows.append(
            (
                f"biocodes biocode (raw file + scenes), {fmt}",
                f"{f_rate:.0f} MB/s",
                f"{f_rate / lim:.2f} x limit",
            )
        )
        cost = child("digest-cost", files[fmt])
        same(f"{fmt} biocode without plane digests", cost["codes"], full["codes"])
        rows.append(
            (
                f"  plane digests: with / without, {fmt}",
                f"{cost['with_s'] / cost['without_s'] - 1:+.1%} time",
                f"{cost['with_cpu'] / cost['without_cpu'] - 1:+.1%} CPU "
                "(target <= +5%)",
            )
        )
        rows.append((f"  peak RSS, {fmt}", f"{full['rss']:.0f} MiB", ""))
        if not args.skip_iscc_bio:
            ref = child("iscc-bio", files[fmt])
            same(f"{fmt} iscc-bio scene codes", ref["codes"], full["codes"])
            same(f"{fmt} iscc-bio walk codes", ref["scene_codes"], full["codes"])
            same(f"{fmt} iscc-bio raw-file code", ref["raw"], full["raw"])
            for what, theirs, ours in (
                ("scenes", ref["scenes_seconds"], scenes["seconds"]),
                ("biocode", ref["seconds"], full["seconds"]),
            ):
                rows.append(
                    (
                        f"iscc-bio 0.2.0 {what}, {fmt}",
                        f"{mb / theirs:.0f} MB/s",
                        f"biocodes {theirs / ours:.1f}x faster",
                    )
                )
            per_file = ref["wall"] - ref["scenes_seconds"]  # one biocode call
            rows.append(
                (
                    f"  iscc-bio start-up; per file incl. start-up, {fmt}",
                    f"{ref['startup']:.1f} s; {per_file:.1f} s",
                    f"biocodes (warm worker) {per_file / full['seconds']:.1f}x faster",
                )
            )
            rows.append((f"  peak RSS iscc-bio, {fmt}", f"{ref['rss']:.0f} MiB", ""))

    big = child("scenes", files["big"])
    big_gib = big["nbytes"] / (1 << 30)
    budget = 4 * plane_mib + 300
    rows.append(
        (
            f"peak RSS hashing a {big_gib:.1f} GiB scene",
            f"{big['rss']:.0f} MiB",
            f"{big['rss'] / budget:.2f} x budget (4 planes + 300 MiB = {budget:.0f})",
        )
    )

    tiny = child("shard", files["tiny"], 1)
    n_tiny = tiny["images"]
    same("tiny images failed", tiny["failed"], 0)
    same(
        "tiny image codes",
        sorted(c for _, c in tiny["codes"]),
        sorted(expected_tiny_codes(n_tiny)),
    )
    rows.append(
        (
            f"tiny images, 1 warm worker ({n_tiny} images)",
            f"{n_tiny / tiny['seconds']:.0f} img/s",
            f"(worker start-up paid once: {tiny['warmup']:.1f} s)",
        )
    )

    for label, env in (("", {}), (", serial workers", {"BIOCODES_OVERLAP": "0"})):
        one = child("shard", files["shard"], 1, env=env)
        two = child("shard", files["shard"], 2, env=env)
        same("shard codes, 1 vs 2 workers", one["codes"], two["codes"])
        same("shard failures", (one["failed"], two["failed"]), (0, 0))
        rows.append(
            (
                f"2 workers vs 1, {one['images']}-image shard{label}",
                f"{one['seconds']:.1f} s vs {two['seconds']:.1f} s",
                f"{one['seconds'] / two['seconds']:.2f}x",
            )
        )

    # what plane digests add to the catalogue: 8 bytes per plane (binary,
    # incompressible), at the plane counts of the images measured here
    per_scene = {
        "tiny images (1 plane)": 1,
        "shard images (8 planes)": 4 * 2,
        f"the scene above ({shape['size_z'] * shape['size_c']} planes)": shape["size_z"]
        * shape["size_c"],
    }
    for what, planes in per_scene.items():
        size = 10_000_000 * planes * 8
        rows.append(
            (f"plane digests at 10M images like {what}", f"{size / 1e9:.2f} GB", "")
        )

    width = max(len(r[0]) for r in rows)
    print(f"machine: {os.cpu_count()} cores, {platform_line()}")
    for name, value, ratio in rows:
        print(f"{name:<{width}}  {value:>16}  {ratio}")
    if mismatches:
        print("CODES DIFFER:", *mismatches, sep="\n  ")
        return 1
    print("codes: identical across the limit, biocodes and iscc-bio")
    return 0


def platform_line() -> str:
    import platform

    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1 << 30)
    cpu = platform.machine()
    info = Path("/proc/cpuinfo")
    if info.exists():
        names = [x for x in info.read_text().splitlines() if x.startswith("model name")]
        cpu = names[0].split(":", 1)[1].strip() if names else cpu
    return f"{mem:.0f} GiB, {cpu}, Python {platform.python_version()}"


if __name__ == "__main__":
    sys.exit(main())
