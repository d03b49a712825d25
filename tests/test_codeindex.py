"""The code index (issue 27): an exact search over packed, memory-mapped
codes answers as a brute-force scan does, and ``similar`` answers from it as
it answered from the catalogue's rows."""

import json
import random
import shutil

import numpy as np
import pyarrow as pa
import pytest
from catalogues import build_catalogue, scale_benchmark

from biocodes import synth
from biocodes.repository import codeindex
from biocodes.repository.codeindex import search_words
from biocodes.repository.duplicates import code_bits


def random_words(rng, n, words, near=0.3, copies=0.2):
    """Random codes with exact copies and near copies (ties galore)."""
    out = rng.integers(0, 2**63, (n, words), dtype=np.uint64, endpoint=True)
    for k in range(1, n):
        r = rng.random()
        if r < copies:
            out[k] = out[rng.integers(k)]
        elif r < copies + near:
            out[k] = out[rng.integers(k)]
            for _ in range(rng.integers(1, 6)):
                bit = int(rng.integers(64))
                out[k, rng.integers(words)] ^= np.uint64(1 << bit)
    return out


def brute(words, query, max_distance=None, k=None):
    dist = [
        sum(bin(int(a) ^ int(b)).count("1") for a, b in zip(row, query, strict=True))
        for row in words
    ]
    found = sorted(
        (d, i) for i, d in enumerate(dist) if max_distance is None or d <= max_distance
    )
    if k is not None:
        found = found[:k]
    return [i for _, i in found], [d for d, _ in found]


@pytest.mark.parametrize("words_per_code", [1, 4])
def test_index_search_equals_brute_force(words_per_code):
    rng = np.random.default_rng(words_per_code)
    words = random_words(rng, 700, words_per_code)
    for q in range(25):
        query = words[rng.integers(len(words))].copy()
        if q % 3 == 0:
            query[0] ^= np.uint64(1 << int(rng.integers(64)))  # a code not there
        for max_distance, k in ((0, None), (6, None), (None, 10), (5, 3), (None, 1)):
            for block in (codeindex.BLOCK, 64, 7):  # hits spread over blocks
                rows, dist = search_words(words, query, max_distance, k, block=block)
                want_rows, want_dist = brute(words, query, max_distance, k)
                assert rows.tolist() == want_rows, (max_distance, k, block)
                assert dist.tolist() == want_dist


def test_index_files_are_memory_mapped_and_equal_the_codes(tmp_path):
    import iscc_core as ic

    rng = random.Random(1)
    head = ic.encode_header(ic.MT.DATA, 0, 0, ic.encode_length(ic.MT.DATA, 256))
    codes = [
        "ISCC:" + ic.encode_base32(head + rng.getrandbits(256).to_bytes(32, "big"))
        for _ in range(50)
    ]
    rows = pa.table(
        {
            "image_id": [f"i{k:02d}" for k in range(50)],
            "path": [f"p{k:02d}.tif" for k in range(50)],
            "scene_index": pa.array([0] * 50, pa.int32()),
            "code": codes,
        },
        schema=codeindex.ROWS_SCHEMA,
    )
    codeindex.write_rows(tmp_path / "_index", {"data_code": rows})
    (part,) = codeindex.open_parts(tmp_path, "data_code")
    assert isinstance(part.words, np.memmap) and part.bits == 256
    for k, code in enumerate(codes):
        value, _ = code_bits(code)
        assert int.from_bytes(part.words[k].astype(">u8").tobytes(), "big") == value
    found = codeindex.search(tmp_path, "data_code", codes[7], 0)
    assert [r["path"] for r in found] == ["p07.tif"] and found[0]["distance"] == 0
    nearest = codeindex.search(tmp_path, "data_code", codes[7], k=5)
    assert len(nearest) == 5 and nearest[0]["path"] == "p07.tif"


# ------------------------------------------------------- similar, as before


def old_similar(catalogue_dir, query, max_distance=None):
    """``similar`` as it was before the index: every scene read as a row and
    compared one by one (the reference the index must equal)."""
    import os

    from biocodes.core.fingerprint import biocode
    from biocodes.repository.similar import DEFAULT_DISTANCE, _kind_of, part_probes
    from biocodes.repository.tables import read_catalogue
    from biocodes.views.build import view_options

    scenes = [s for s in read_catalogue(catalogue_dir, "scenes") if s["status"] == "ok"]
    probes = []
    if not os.path.exists(query):
        code = query if query.upper().startswith("ISCC:") else f"ISCC:{query}"
        probes.append((code, _kind_of(code), code))
    else:
        runs = read_catalogue(catalogue_dir, "runs")
        config = json.loads(runs[-1].get("config") or "{}") if runs else {}
        views = None
        if any(s.get("iscc_mixed") for s in scenes):
            views = view_options(config.get("views") or {}, None)
        probes += part_probes(biocode(query, views=views)["parts"])
    candidates = {"iscc_image": read_catalogue(catalogue_dir, "views")}
    by_scene = {(s["image_id"], s["scene_index"]): s for s in scenes}
    best = {}
    for label, column, code in probes:
        limit = DEFAULT_DISTANCE[column] if max_distance is None else max_distance
        if column == "iscc_code":
            limit = 0
        value, bits = code_bits(code) if column != "iscc_code" else (0, 0)
        for row in candidates.get(column, scenes):
            other = row.get(column)
            if not other:
                continue
            if column == "iscc_code":
                d = 0 if other == code else None
            else:
                ov, ob = code_bits(other)
                d = (ov ^ value).bit_count() if ob == bits else None
            if d is None or d > limit:
                continue
            scene = by_scene.get((row["image_id"], row["scene_index"]))
            if scene is None:
                continue
            key = (label, scene["image_id"], scene["scene_index"])
            match = {
                "query": label,
                "match": "identical" if column == "iscc_code" else column,
                "distance": d,
                "path": scene["path"],
                "image_id": scene["image_id"],
                "scene_index": scene["scene_index"],
                "code": other,
            }
            rank = (d, column != "iscc_code")
            if key not in best or rank < (
                best[key]["distance"],
                best[key]["match"] != "identical",
            ):
                best[key] = match
    return sorted(
        best.values(),
        key=lambda m: (m["query"], m["distance"], m["path"], m["scene_index"]),
    )


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A small catalogue: copies, near copies (cropped, noisy), other images."""
    tmp = tmp_path_factory.mktemp("ix")
    repo = tmp / "repo"
    repo.mkdir()
    base = synth.structured_scene((1, 2, 2, 48, 64), "uint16", seed=1)
    synth.write_ome_tiff(repo / "a.ome.tif", base)
    synth.write_ome_tiff(repo / "a_copy.ome.tif", base, compression="zlib")
    noisy = base.copy()
    noisy[0, 0, 0, :2, :2] += 1
    synth.write_ome_tiff(repo / "a_noisy.ome.tif", noisy)
    synth.write_ome_tiff(repo / "a_crop.ome.tif", base[..., 2:-2, 2:-2].copy())
    for seed in range(2, 6):
        synth.write_ome_tiff(
            repo / f"o{seed}.ome.tif",
            synth.structured_scene((1, 1, 1, 32, 32), "uint8", seed=seed),
        )
    rgb = synth.structured_scene((1, 1, 1, 40, 40), "uint8", seed=9)
    synth.write_png(repo / "c.png", np.dstack([rgb[0, 0, 0]] * 3))
    catalogue = build_catalogue({"repo": repo}, tmp / "results")
    queries = [repo / "a.ome.tif", repo / "a_crop.ome.tif", repo / "c.png"]
    return catalogue, queries


def test_similar_by_file_and_code_answers_as_before(small, tmp_path):
    from biocodes.repository.similar import similar
    from biocodes.repository.tables import read_catalogue

    catalogue, files = small
    assert (catalogue / "_index" / "data_code").is_dir()
    scenes = read_catalogue(catalogue, "scenes")
    views = read_catalogue(catalogue, "views")
    codes = [s[c] for s in scenes[:4] for c in ("iscc_code", "data_code", "iscc_mixed")]
    codes += [v["iscc_image"] for v in views[:3]]
    # an index-less catalogue (merged before the index): built in memory
    bare = tmp_path / "bare"
    shutil.copytree(catalogue, bare)
    shutil.rmtree(bare / "_index")
    checked = 0
    for query in [*map(str, files), *codes]:
        for limit in (None, 0, 12, 40):
            want = old_similar(catalogue, query, limit)
            assert similar(catalogue, query, limit) == want, (query, limit)
            assert similar(bare, query, limit) == want, (query, limit)
            checked += len(want)
    assert checked > 50  # the queries did match something


def test_the_merge_writes_the_index_and_a_quiet_night_links_it(tmp_path):
    """The merge writes one index part per partition of the live scenes'
    codes; a night links the parts of the partitions it did not rewrite (no
    byte written), and writes the others as a merge from scratch does."""
    import os
    from pathlib import Path

    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from biocodes.repository.catalogue import merge_run

    scale = scale_benchmark()
    scale.synthetic_states(tmp_path / "quiet", 300, 2)
    scale.synthetic_states(tmp_path / "changed", 300, 2, changed=0.05)

    def merge(states, results, run):
        scale.synthetic_manifest(results / "m.parquet", run)
        dirs = [tmp_path / states / str(k) for k in range(2)]
        merge_run(dirs, results / "catalogue", {}, results / "m.parquet")
        return Path(os.path.realpath(results / "catalogue"))

    results = tmp_path / "results"
    results.mkdir()
    first = merge("quiet", results, 1)
    npy = [Path(f"_index/data_code/part-{k:04d}-256.npy") for k in range(2)]
    scenes = pq.read_table(first / "scenes.parquet")
    live = scenes.filter(pc.equal(scenes["status"], "ok"))
    parts = codeindex.open_parts(first, "data_code")
    assert [len(p.words) for p in parts] == [
        pq.read_table(first / "scenes" / f"part-{k:04d}.parquet")
        .filter(pc.field("status") == "ok")
        .num_rows
        for k in range(2)
    ]
    indexed = pa.concat_tables(p.rows(np.arange(len(p.words))) for p in parts)
    want = live.sort_by([("image_id", "ascending"), ("scene_index", "ascending")])
    assert sorted(indexed["code"].to_pylist()) == sorted(want["data_code"].to_pylist())
    second = merge("quiet", results, 2)
    for path in npy:
        assert os.stat(first / path).st_ino == os.stat(second / path).st_ino
    # a night where only shard 1 changed: shard 0 keeps its files
    shutil.rmtree(tmp_path / "quiet" / "1")
    shutil.copytree(tmp_path / "changed" / "1", tmp_path / "quiet" / "1")
    third = merge("quiet", results, 3)
    assert os.stat(second / npy[0]).st_ino == os.stat(third / npy[0]).st_ino
    assert os.stat(second / npy[1]).st_ino != os.stat(third / npy[1]).st_ino
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    fresh = merge("quiet", scratch, 3)
    compared = 0
    for path in sorted((fresh / "_index").rglob("*")):
        if path.is_file():
            other = third / path.relative_to(fresh)
            assert other.read_bytes() == path.read_bytes(), path
            compared += 1
    assert compared > 10


def test_a_shard_jobs_index_part_is_linked_only_with_its_own_files(tmp_path):
    """A shard job writes its partition's index part beside its tables;
    the merge links it when it links those very files, and writes the part
    itself when the shard's tables were written again after the index."""
    import os
    from pathlib import Path

    from biocodes.repository.catalogue import merge_run
    from biocodes.repository.tables import read_table, sorted_batches, write_atomic

    scale = scale_benchmark()
    scale.synthetic_states(tmp_path / "s", 300, 2)
    states = [tmp_path / "s" / str(k) for k in range(2)]
    # shard 1's scenes written again (a new file, same rows): its index
    # part no longer vouches for them
    scenes = read_table(states[1] / "scenes.parquet", "scenes")
    (states[1] / "scenes.parquet").unlink()
    write_atomic(sorted_batches("scenes", scenes), states[1] / "scenes.parquet")
    assert codeindex.shard_index(states[0]) is not None
    assert codeindex.shard_index(states[1]) is None
    scale.synthetic_manifest(tmp_path / "m.parquet", 1)
    merge_run(states, tmp_path / "catalogue", {}, tmp_path / "m.parquet")
    index = Path(os.path.realpath(tmp_path / "catalogue")) / "_index" / "data_code"
    ours = [states[k] / "_index" / "data_code" / "shard-256.npy" for k in range(2)]
    theirs = [index / f"part-{k:04d}-256.npy" for k in range(2)]
    assert os.stat(ours[0]).st_ino == os.stat(theirs[0]).st_ino
    assert os.stat(ours[1]).st_ino != os.stat(theirs[1]).st_ino
    assert ours[1].read_bytes() == theirs[1].read_bytes()  # same rows, same part
