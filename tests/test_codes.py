"""ISCC-SUM codes: scene codes, simprints and raw-file codes."""

import base64
import io
import subprocess
import sys
from pathlib import Path

import iscc_core
import iscc_sum
import numpy as np

from biocodes import synth
from biocodes.core.codes import SceneHasher, raw_file_code
from biocodes.core.fingerprint import biocode
from biocodes.core.imagewalk import canonical_bytes


def test_scene_code_is_wide_iscc_sum_of_256_bit_units():
    data = np.arange(300_000, dtype=np.uint32).reshape(600, 500)
    raw = canonical_bytes(data)
    hasher = SceneHasher()
    hasher.add_plane([raw[:1000], raw[1000:]])
    result = hasher.result()
    data_code = iscc_core.gen_data_code_v0(io.BytesIO(raw), bits=256)["iscc"]
    instance_code = iscc_core.gen_instance_code_v0(io.BytesIO(raw), bits=256)["iscc"]
    assert result["units"] == [data_code, instance_code]
    expected = iscc_core.gen_iscc_code_v0([data_code, instance_code], wide=True)["iscc"]
    assert result["iscc_code"] == expected


def test_simprints_are_plane_data_codes(tmp_path):
    a = synth.random_scene((1, 2, 2, 40, 50), "int16", seed=4)
    path = synth.write_ome_tiff(tmp_path / "s.ome.tif", a)
    part = biocode(path, simprints=True)["parts"][0]
    sims = part["simprints"]["DATA_NONE_V0"]
    planes = [a[0, c, z] for z in range(2) for c in range(2)]
    assert [s["offset"] for s in sims] == [0, 1, 2, 3]
    for sim, plane in zip(sims, planes):
        raw = canonical_bytes(plane)
        code = iscc_core.gen_data_code_v0(io.BytesIO(raw), bits=256)["iscc"]
        body = iscc_core.decode_base32(code.removeprefix("ISCC:"))[2:]
        assert base64.b64decode(sim["simprint"]) == body
        assert sim["size"] == len(raw) == 40 * 50 * 2
    assert "simprints" not in biocode(path)["parts"][0]


def test_raw_file_code_equals_iscc_sum_for_a_file(tmp_path):
    path = synth.write_ome_tiff(
        tmp_path / "f.ome.tif", synth.random_scene((1, 1, 3, 300, 400))
    )
    ours = raw_file_code(path)
    theirs = iscc_sum.code_iscc_sum(str(path), wide=True, add_units=True)
    assert ours["iscc_code"] == theirs.iscc
    assert ours["units"] == list(theirs.units)
    assert ours["filesize"] == path.stat().st_size


def test_raw_file_code_of_a_store_equals_iscc_sum_tree(tmp_path):
    store = synth.write_ome_zarr(
        tmp_path / "t.ome.zarr", synth.random_scene((1, 2, 2, 64, 64))
    )
    (store / ".isccignore").write_text("ignored.txt\n")
    (store / "ignored.txt").write_text("not hashed")
    (store / "meta.iscc.json").write_text("{}")
    tool = Path(sys.executable).parent / "iscc-sum"  # the tool from the same venv
    out = subprocess.run(
        [tool, "--tree", str(store)], capture_output=True, text=True, check=True
    ).stdout
    assert raw_file_code(store)["iscc_code"] == out.split()[0]
    assert biocode(store)["iscc_code"] == out.split()[0]


def test_biocode_result_keys(tmp_path):
    path = synth.write_ome_tiff(
        tmp_path / "k.ome.tif", synth.random_scene((1, 1, 1, 8, 8))
    )
    r = biocode(path)
    assert {"iscc_code", "units", "datahash", "filesize", "generator", "parts"} <= set(
        r
    )
    part = r["parts"][0]
    assert {"iscc_code", "units", "scene_index", "scene_name", "dims", "dtype"} <= set(
        part
    )
    assert part["dims"] == {"T": 1, "C": 1, "Z": 1, "Y": 8, "X": 8}
    assert part["dtype"] == "uint16"


def test_plane_digests_are_xxh3_of_each_plane_in_imagewalk_order(tmp_path):
    import xxhash

    from biocodes.repository.shard import packed_digests

    a = synth.random_scene((2, 3, 2, 20, 30), "uint16", seed=9)  # T, C, Z
    path = synth.write_ome_tiff(tmp_path / "d.ome.tif", a)
    part = biocode(path)["parts"][0]
    planes = [a[t, c, z] for z in range(2) for c in range(3) for t in range(2)]
    expected = [xxhash.xxh3_64(canonical_bytes(p)).hexdigest() for p in planes]
    assert part["plane_digests"] == expected
    assert packed_digests(part["plane_digests"]) == b"".join(
        bytes.fromhex(d) for d in expected
    )
    assert len(packed_digests(part["plane_digests"])) == 12 * 8
    # the code does not depend on them
    plain = biocode(path, plane_digests=False)["parts"][0]
    assert "plane_digests" not in plain
    assert plain["iscc_code"] == part["iscc_code"]
