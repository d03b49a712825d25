"""Near-duplicate search by banding equals brute force."""

import random

from biocodes.similarity import duplicate_rows, near_pairs


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
