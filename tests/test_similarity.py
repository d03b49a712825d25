"""Near-duplicate search by banding equals brute force."""

import random

import pytest

from biocodes.repository.duplicates import duplicate_rows, near_pairs


def brute(codes, d):
    return [
        (i, j, (a ^ b).bit_count())
        for i, (a, _) in enumerate(codes)
        for j, (b, _) in enumerate(codes)
        if i < j and (a ^ b).bit_count() <= d
    ]


def test_banding_finds_exactly_the_pairs_brute_force_finds():
    rng = random.Random(3)
    for bits, d in ((64, 8), (256, 24), (64, 0)):
        base = [rng.getrandbits(bits) for _ in range(60)]
        codes = []
        for value in base:
            codes.append((value, bits))
            for _ in range(2):  # near copies with 0..d+2 flipped bits
                flips = rng.sample(range(bits), rng.randint(0, d + 2))
                codes.append((value ^ sum(1 << f for f in flips), bits))
        assert near_pairs(codes, d) == brute(codes, d)


def test_groups_span_files_and_exact_groups_are_not_repeated():
    images = [
        {"image_id": i, "root": "r", "format": "tiff"} for i in ("a", "b", "c", "d")
    ]
    data = "ISCC:GAD2WMSTGXL5LNIUUUBSMQKCOZEQPANBZJIWOJ64QOEJVBXDKGXDLDA"

    def s(iid, index, code, dcode=data):
        return {
            "image_id": iid,
            "path": f"{iid}.tif",
            "scene_index": index,
            "iscc_code": code,
            "data_code": dcode,
            "status": "ok",
        }

    scenes = [s("a", 0, "X"), s("b", 0, "X"), s("c", 0, "X"), s("c", 1, "X")]
    rows = duplicate_rows(scenes, images)
    assert {r["kind"] for r in rows} == {"exact"}  # same data code, same pixels
    assert [r["path"] for r in rows] == ["a.tif", "b.tif", "c.tif", "c.tif"]
    # within one file only: no group
    assert duplicate_rows([s("d", 0, "Y"), s("d", 1, "Y")], images) == []


@pytest.mark.parametrize("table_bits", [0, 24])
def test_a_query_finds_exactly_the_pairs_of_the_queried_codes(table_bits, monkeypatch):
    """Both ways of finding a band key's codes (a table of where each key
    starts; binary search in the ordered keys, used for wide bands) and the
    screening on one word give exactly a brute force's pairs, for codes of
    one, two and four words."""
    import numpy as np

    from biocodes.repository import duplicates
    from biocodes.repository.duplicates import _pairs_within

    monkeypatch.setattr(duplicates, "TABLE_BITS", table_bits)
    rng = random.Random(4)
    for bits, d in ((64, 8), (128, 12), (256, 24)):
        base = [rng.getrandbits(bits) for _ in range(80)]
        codes = [
            v ^ sum(1 << f for f in rng.sample(range(bits), rng.randint(0, d + 2)))
            for v in base
            for _ in range(3)
        ]
        words = np.array(
            [
                [(c >> (64 * k)) & (2**64 - 1) for k in reversed(range(bits // 64))]
                for c in codes
            ],
            dtype=np.uint64,
        )
        query = np.array([rng.random() < 0.1 for _ in codes])
        i, j, dist = _pairs_within(words, bits, d, query=query)
        found = sorted(zip(i.tolist(), j.tolist(), dist.tolist()))
        want = [
            p
            for p in brute([(c, bits) for c in codes], d)
            if query[p[0]] or query[p[1]]
        ]
        assert found == want


def test_duplicates_from_last_nights_pairs_equal_a_full_search():
    """Pairs found by the previous merge are reused; only new codes are
    searched, and the groups are those of a search over everything."""
    import iscc_core as ic
    import pyarrow as pa
    import pyarrow.compute as pc

    from biocodes.repository.duplicates import duplicate_table

    rng = random.Random(6)
    head = ic.encode_header(ic.MT.DATA, 0, 0, ic.encode_length(ic.MT.DATA, 256))
    base = [rng.getrandbits(256) for _ in range(40)]

    def code(v):
        return "ISCC:" + ic.encode_base32(head + v.to_bytes(32, "big"))

    rows = []
    for k in range(200):
        v = base[k % 40]
        v ^= sum(1 << f for f in rng.sample(range(256), rng.randint(0, 30)))
        rows.append((f"i{k:03d}", f"p{k:03d}", code(v)))

    def tables(selected):
        scenes = pa.table(
            {
                "image_id": [r[0] for r in selected],
                "path": [r[1] for r in selected],
                "scene_index": pa.array([0] * len(selected), pa.int32()),
                "iscc_code": [r[2] for r in selected],
                "data_code": [r[2] for r in selected],
                "iscc_mixed": pa.array([None] * len(selected), pa.string()),
                "status": ["ok"] * len(selected),
            }
        )
        images = pa.table(
            {
                "image_id": [r[0] for r in selected],
                "root": ["r"] * len(selected),
                "format": ["tiff"] * len(selected),
            }
        )
        return scenes, images

    old = rows[:150]
    _, pairs = duplicate_table(*tables(old))
    searched = pa.array(sorted({r[2] for r in old}))
    now = rows[20:]  # some gone, some new
    known = {
        "near_data": (searched, pairs.filter(pc.equal(pairs["kind"], "near_data")))
    }
    full, full_pairs = duplicate_table(*tables(now))
    again, again_pairs = duplicate_table(*tables(now), known=known)
    keys = [(k, "ascending") for k in ("kind", "group_id", "image_id", "scene_index")]
    assert full.num_rows and full.sort_by(keys).equals(again.sort_by(keys))

    def norm(t):
        a, b = t["a"].to_pylist(), t["b"].to_pylist()
        return sorted(
            (k, min(x, y), max(x, y)) for k, x, y in zip(t["kind"].to_pylist(), a, b)
        )

    assert norm(full_pairs) == norm(again_pairs)
