"""The first merge's near-duplicate search on a real catalogue's codes.

    .venv/bin/python benchmarks/dense.py CATALOGUE [--baseline SRC] [--rounds N]

CATALOGUE is a workflow's ``results/catalogue`` (e.g. the one
``benchmarks/scale.py --skip-merge --data DIR`` leaves in
``DIR/run-20000-<checkout>/results/catalogue``). Times, each in a fresh
process and best of ``--rounds``:

* ``_pairs_within`` over the catalogue's distinct ISCC-MIXED codes (64 bits,
  distance 8) and Data-Codes (256 bits, distance 24), the search a first
  merge does;
* ``duplicate_table`` over the scenes and images tables (the merge's whole
  duplicates step).

``--baseline SRC`` runs the same with another checkout's ``src`` (the code
before a change) and prints after / before ratios; the groups found (the
connected components of the pairs) must be the same on both sides. Never a
timed test: ratios in one run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from scale import child  # one fresh interpreter per side, as scale.py runs them

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import hashlib, json, sys, time
import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
from biocodes.repository import duplicates as dup
from biocodes.repository.codeindex import table_path

catalogue, rounds = sys.argv[1], int(sys.argv[2])
scenes = pq.read_table(table_path(catalogue, "scenes"))
images = pq.read_table(table_path(catalogue, "images"))
ok = pc.and_(pc.equal(scenes["status"], "ok"), pc.is_valid(scenes["iscc_code"]))
live = scenes.filter(pc.fill_null(ok, False))
out = {}
for column, limit in (("iscc_mixed", 8), ("data_code", 24)):
    codes = pc.unique(live[column].combine_chunks().drop_null())
    codes = codes.sort()  # the same rows on both sides
    words, bits = dup.code_words(codes)
    best, stats = None, {}
    for _ in range(rounds):
        stats = {}
        t0 = time.perf_counter()
        i, j, d = dup._pairs_within(words, bits, limit, stats=stats)
        s = time.perf_counter() - t0
        best = s if best is None else min(best, s)
    label = dup._components(len(words), i, j)
    # canonical groups: each code's group named by its group's first code
    first = np.full(label.max() + 1, len(words))
    np.minimum.at(first, label, np.arange(len(words)))
    digest = hashlib.sha256(first[label].astype("<i8").tobytes()).hexdigest()
    out[column] = {
        "codes": len(words), "seconds": best, "pairs": len(i),
        "candidates": stats["candidates"], "groups": digest[:16],
        "max_distance": int(d.max()) if len(d) else 0, "limit": limit,
    }
best = None
for _ in range(rounds):
    t0 = time.perf_counter()
    table, _ = dup.duplicate_table(scenes, images)
    s = time.perf_counter() - t0
    best = s if best is None else min(best, s)
rows = table.sort_by([(k, "ascending") for k in
                      ("kind", "group_id", "image_id", "scene_index")])
out["duplicate_table"] = {
    "seconds": best, "rows": table.num_rows,
    "groups": hashlib.sha256(str(rows.to_pydict()).encode()).hexdigest()[:16],
}
print(json.dumps(out))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("catalogue", type=Path)
    parser.add_argument("--baseline", type=Path, help="another checkout's src/")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    sides = [("after", ROOT / "src")]
    if args.baseline:
        sides.insert(0, ("before", args.baseline))
    found = {
        label: child(src, CHILD, args.catalogue, args.rounds) for label, src in sides
    }
    for label, r in found.items():
        for what, f in r.items():
            extra = ", ".join(f"{k} {v}" for k, v in f.items() if k != "seconds")
            print(f"{label:6s} {what:15s}: {f['seconds']:8.2f} s ({extra})")
    if len(found) == 2:
        before, after = found["before"], found["after"]
        for what in after:
            same = before[what]["groups"] == after[what]["groups"]
            ratio = after[what]["seconds"] / max(before[what]["seconds"], 1e-9)
            print(
                f"{what:15s}: after / before = {ratio:.3f} "
                f"({before[what]['seconds']:.2f} s -> {after[what]['seconds']:.2f} s)"
                f"; same groups: {same}"
            )
            if not same:
                print(f"  GROUPS DIFFER in {what}", file=sys.stderr)
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
