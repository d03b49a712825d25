"""Repository scale: a night's cost against the floor, and the merge at 1M.

    .venv/bin/python benchmarks/scale.py [--images N] [--merge-images M]
        [--skip-repo] [--skip-merge] [--data DIR] [--baseline SRC]

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
"""

from __future__ import annotations

import argparse
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


def _codes(rng: np.random.Generator, prefix: bytes, nbytes: int, n: int) -> list:
    """n random ISCC-like codes: a fixed header, then a random body (base32)."""
    import base64

    body = rng.integers(0, 256, (n, nbytes), dtype=np.uint8)
    return [
        "ISCC:" + base64.b32encode(prefix + b.tobytes()).decode().rstrip("=")
        for b in body
    ]


def _flip(code: str, bits: int, rng: np.random.Generator) -> str:
    """A near copy of a code: ``bits`` random bits of its body flipped."""
    import base64

    text = code[5:]
    raw = bytearray(base64.b32decode(text + "=" * (-len(text) % 8)))
    for b in rng.choice((len(raw) - 2) * 8, bits, replace=False):
        raw[2 + b // 8] ^= 1 << (b % 8)
    return "ISCC:" + base64.b32encode(bytes(raw)).decode().rstrip("=")


def synthetic_states(
    out: Path, images: int, shards: int, seed: int = 0, changed: float = 0.0
) -> None:
    """Shard states of ``images`` images x 1.2 scenes (2 views each, 1% failed,
    0.5% exact and 0.5% near copies), as the fingerprint jobs write them.
    With ``changed``, that fraction of the images has new codes and mtimes."""
    import iscc_core as ic
    import pyarrow as pa

    from biocodes.repository.manifest import image_id, shard_of
    from biocodes.repository.tables import (
        SCHEMAS,
        SHARD_TABLES,
        sort_table,
        write_atomic,
    )

    rng = np.random.default_rng(seed)
    data_head = ic.encode_header(ic.MT.DATA, 0, 0, ic.encode_length(ic.MT.DATA, 256))
    mixed_head = ic.encode_header(
        ic.MT.CONTENT, ic.ST_CC.MIXED, 0, ic.encode_length(ic.MT.CONTENT, 64)
    )
    image_head = ic.encode_header(
        ic.MT.CONTENT, ic.ST_CC.IMAGE, 0, ic.encode_length(ic.MT.CONTENT, 64)
    )
    sum_head = bytes([0x57, 0x00])  # ISCC-SUM (Data + Instance, 128 bits each)
    ids = [image_id("repo", f"d{i // 1000:04d}/img{i:07d}.tif") for i in range(images)]
    n_scenes = rng.choice([1, 2], images, p=[0.8, 0.2])
    total = int(n_scenes.sum())
    raw = _codes(rng, sum_head, 32, images)
    data = _codes(rng, data_head, 32, total)
    sums = _codes(rng, sum_head, 32, total)
    mixed = _codes(rng, mixed_head, 8, total)
    views = _codes(rng, image_head, 8, 2 * total)
    for k in rng.choice(total, total // 200, replace=False):  # exact copies
        other = int(rng.integers(total))
        data[k], sums[k], mixed[k] = data[other], sums[other], mixed[other]
    for k in rng.choice(total, total // 200, replace=False):  # near copies
        other = int(rng.integers(total))
        data[k] = _flip(data[other], int(rng.integers(1, 20)), rng)
        mixed[k] = _flip(mixed[other], int(rng.integers(1, 6)), rng)
    moved = rng.random(images) < changed
    if changed:
        fresh = _codes(np.random.default_rng(seed + 1), data_head, 32, total)
        fresh_sum = _codes(np.random.default_rng(seed + 2), sum_head, 32, total)
        # new pixels give new views too
        fresh_views = _codes(np.random.default_rng(seed + 3), image_head, 8, 2 * total)
    failed = rng.random(images) < 0.01
    rows = {name: {f: [] for f in SCHEMAS[name].names} for name in SHARD_TABLES}
    shard = []
    s = 0

    def add(name: str, **values: object) -> None:
        for f in SCHEMAS[name].names:
            rows[name][f].append(values.get(f))

    for i, iid in enumerate(ids):
        path = f"d{i // 1000:04d}/img{i:07d}.tif"
        common = {"image_id": iid, "root": "repo", "path": path, "size": 4096 + i}
        common["mtime_ns"] = 10**18 + i + (10**9 if moved[i] else 0)
        common.update(settings_key="k", worker="node", run_id="run0")
        if failed[i]:
            add("images", **common, status="error", error="truncated", scene_count=0)
            add(
                "errors",
                image_id=iid,
                path=path,
                stage="read",
                run_id="run0",
                error_type="truncated",
                message=f"{path}: truncated",
            )
        else:
            add(
                "images",
                **common,
                status="ok",
                scene_count=int(n_scenes[i]),
                format="tiff",
                iscc_code=raw[i],
                datahash="x",
            )
            for si in range(int(n_scenes[i])):
                dc, sc = data[s], sums[s]
                if moved[i]:
                    dc, sc = fresh[s], fresh_sum[s]
                add(
                    "scenes",
                    image_id=iid,
                    path=path,
                    scene_index=si,
                    scene_name=f"s{si}",
                    size_t=1,
                    size_c=1,
                    size_z=1,
                    size_y=64,
                    size_x=64,
                    dtype="uint16",
                    planes=1,
                    nbytes=8192,
                    iscc_code=sc,
                    data_code=dc,
                    instance_code="ISCC:IAD",
                    iscc_mixed=mixed[s],
                    status="ok",
                )
                for v in range(2):
                    add(
                        "views",
                        image_id=iid,
                        scene_index=si,
                        view_index=v,
                        strategy="mip",
                        t=0,
                        channels=[0],
                        iscc_image=(fresh_views if moved[i] else views)[2 * s + v],
                    )
                s += 1
        shard.append(shard_of(iid, shards))
        if failed[i]:
            s += int(n_scenes[i])
    for name in SHARD_TABLES:
        table = pa.table(rows[name], schema=SCHEMAS[name])
        ids_col = np.array(table["image_id"].to_pylist(), dtype=object)
        where = np.array([shard_of(x, shards) for x in ids_col], dtype=np.int64)
        for k in range(shards):
            part = table.filter(pa.array(where == k)) if len(where) else table
            write_atomic(sort_table(name, part), out / str(k) / f"{name}.parquet")


def synthetic_manifest(path: Path, run: int) -> None:
    """A manifest holding only the run id and start time the merge reads."""
    import pyarrow as pa

    from biocodes.repository.tables import write_atomic

    meta = {"run_id": f"2026120{run}T000000Z", "started": f"2026-12-0{run}T00:00:00"}
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
import json, sys, time
from pathlib import Path
from biocodes.repository.catalogue import merge_run
states, out, manifest, shards = sys.argv[1:5]
dirs = [Path(states) / str(k) for k in range(int(shards))]
t0 = time.perf_counter()
run = merge_run(dirs, out, {}, manifest)
dt = time.perf_counter() - t0
print(json.dumps({"seconds": dt, "rss_mib": peak_mib(),
    "images": run["images"], "scenes": run["scenes"],
    "added": run["images_added"], "changed": run["images_changed"]}))
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

BUILD_CHILD = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from scale import synthetic_states
base, images, shards = Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
synthetic_states(base / "states", images, shards)
synthetic_states(base / "states-1pct", images, shards, changed=0.01)
"""


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


def merge_child(src: Path, states: Path, out: Path, manifest: Path, shards: int):
    return child(src, MERGE_CHILD, states, out, manifest, shards)


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


def bench_merge(
    data: Path,
    images: int,
    baseline: Path | None,
    queries: int = 11,
    hnsw: bool = False,
) -> tuple[list[str], list[str]]:
    shards = max(1, images // 8000)
    base = data / f"merge-{images}"
    states, states2 = base / "states", base / "states-1pct"
    if not (base / "done").exists():
        shutil.rmtree(base, ignore_errors=True)
        base.mkdir(parents=True)
        t0 = time.perf_counter()
        proc = subprocess.run(
            [PY, "-c", BUILD_CHILD]
            + [str(x) for x in (Path(__file__).parent, base, images, shards)],
            env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        )
        if proc.returncode:
            sys.exit("building the synthetic catalogue failed")
        (base / "done").write_text("")
        print(
            f"built {images:,} images in {time.perf_counter() - t0:.0f} s",
            file=sys.stderr,
        )
    lines, figures = [], []
    for label, src in (("before", baseline), ("after", ROOT / "src")):
        if src is None:
            continue
        results = base / f"results-{label}"
        shutil.rmtree(results, ignore_errors=True)
        results.mkdir()
        for run, (what, st) in enumerate(
            (("first", states), ("no-change", states), ("1% changed", states2)), 1
        ):
            synthetic_manifest(results / "m.parquet", run)
            r = merge_child(
                src, st, results / "catalogue", results / "m.parquet", shards
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
(part,) = open_parts(sys.argv[1], "data_code")
words = np.ascontiguousarray(part.words)
packed = words.astype(">u8").view(np.uint8).reshape(len(words), -1)
t0 = time.perf_counter()
index = Index(ndim=256, metric="hamming", dtype="b1")
index.add(np.arange(len(words)), packed)
build = time.perf_counter() - t0
rng = np.random.default_rng(0)
queries = rng.choice(len(words), 100, replace=False)
out = {"build": build, "rss_mib": peak_mib(), "n": len(words)}
t0 = time.perf_counter()
exact = [search_words(part.words, words[q], k=10)[1] for q in queries]
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


def snakemake(cfg: Path, *extra: str) -> float:
    t0 = time.perf_counter()
    root = TREE["root"]
    path = f"{_no_scontrol()}{Path(PY).parent}:{os.environ['PATH']}"
    env = {**os.environ, "PATH": path}
    if root != ROOT:
        env["PYTHONPATH"] = str(root / "src")
    proc = subprocess.run(
        [
            PY,
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


def bench_repo(data: Path, n: int, extra: dict) -> list[str]:
    repo = data / f"repo-{n}"
    if not (data / f"repo-{n}.done").exists():
        shutil.rmtree(repo, ignore_errors=True)
        write_repo(repo, n)
        (data / f"repo-{n}.done").write_text("")
    work = data / f"run-{n}-{TREE['root'].name}"
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
    # the first run has 4 shards; this one takes the count for n images
    settle = snakemake(cfg)
    base = floor(cfg, repo)
    again = snakemake(cfg)
    files = sorted(p for p in repo.rglob("*.tif"))
    import tifffile

    for p in files[:: max(1, len(files) // max(1, n // 100))][: n // 100]:
        st = p.stat()  # new pixels (whatever an earlier benchmark left), later mtime
        tifffile.imwrite(p, 255 - tifffile.imread(p))
        os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    changed = snakemake(cfg)
    return [
        f"repository of {n:,} images ({TREE['root']}): first run {first:.0f} s "
        f"({n / first:.0f} images/s)",
        f"  floor (stat of every file + snakemake -n): {base:.1f} s",
        f"  second run (shard count set from the first): {settle:.1f} s = "
        f"{settle / base:.2f} x the floor",
        f"  no-change rerun {again:.1f} s = {again / base:.2f} x the floor",
        f"  1% changed rerun {changed:.1f} s = {changed / base:.2f} x the floor",
    ]


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
        "--baseline-tree", type=Path, help="run the repository part with this checkout"
    )
    args = parser.parse_args()
    if args.baseline_tree:
        TREE["root"] = args.baseline_tree.resolve()
    lines, figures = [], []
    if not args.skip_merge:
        found = bench_merge(args.data, args.merge_images, args.baseline, hnsw=args.hnsw)
        lines += found[0]
        figures += found[1]
    if not args.skip_repo:
        lines += bench_repo(args.data, args.images, json.loads(args.config))
    print("\n".join(lines + figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
