"""The biocodes command as a user runs it."""

import hashlib
import json

from conftest import run_cli
from PIL import Image

from biocodes import synth
from biocodes.core.imagewalk import canonical_bytes


def test_help_lists_commands():
    out = run_cli("--help").stdout
    for cmd in ("biocode", "scenes", "pixhash", "imagecode", "views", "make-example"):
        assert cmd in out


def test_biocode_json_one_line_per_path(tmp_path):
    a = synth.random_scene((1, 1, 2, 16, 16), "uint8", seed=1)
    p1 = synth.write_ome_tiff(tmp_path / "a.ome.tif", a)
    p2 = synth.write_ome_zarr(tmp_path / "a.ome.zarr", a)
    proc = run_cli("biocode", "--json", "--simprints", p1, p2)
    assert proc.returncode == 0, proc.stderr
    one, two = (json.loads(x) for x in proc.stdout.splitlines())
    assert one["parts"][0]["iscc_code"] == two["parts"][0]["iscc_code"]
    assert len(one["parts"][0]["simprints"]["DATA_NONE_V0"]) == 2
    assert proc.stderr == ""  # no progress bar on a pipe


def test_human_output_and_scenes(tmp_path):
    a = synth.random_scene((1, 1, 1, 8, 8), "uint8", seed=1)
    b = synth.random_scene((2, 1, 1, 4, 4), "uint8", seed=2)
    path = synth.write_ome_tiff(tmp_path / "m.ome.tif", [a, b])
    out = run_cli("biocode", path).stdout.splitlines()
    assert out[0].startswith("ISCC:") and out[0].endswith(f"*{path}")
    assert out[2].strip().startswith("scene 1 ISCC:")
    scenes = json.loads(run_cli("scenes", "--json", path).stdout)
    assert [s["dims"]["T"] for s in scenes["scenes"]] == [1, 2]
    assert scenes["format"] == "ome-tiff"


def test_pixhash_sha256(tmp_path):
    a = synth.random_scene((1, 2, 1, 8, 8), "uint16", seed=1)
    path = synth.write_ome_tiff(tmp_path / "h.ome.tif", a)
    out = run_cli("pixhash", "-a", "sha256", path).stdout.split()
    expected = hashlib.sha256(canonical_bytes(a[0, 0, 0]) + canonical_bytes(a[0, 1, 0]))
    assert out[0] == expected.hexdigest()
    iscc = run_cli("pixhash", path).stdout.split()[0]
    assert iscc == synth.expected_biocode(a)[0]


def test_scenes_writes_a_preview_png_per_scene(tmp_path):
    a = synth.random_scene((1, 1, 3, 600, 300), "uint16", seed=1)
    b = synth.random_scene((30, 40, 3), "uint8", seed=1)
    path = synth.write_ome_tiff(tmp_path / "t.ome.tif", [a, b[None, None, None]])
    proc = run_cli("scenes", "-o", tmp_path / "thumbs", path)
    assert proc.returncode == 0, proc.stderr
    files = sorted((tmp_path / "thumbs").glob("*.png"))
    assert [f.name for f in files] == ["t.ome.tif.scene0.png", "t.ome.tif.scene1.png"]
    first, second = (Image.open(f) for f in files)
    assert max(first.size) == 256 and first.mode == "L"
    assert second.mode == "RGB"


def test_a_bioformats2raw_store_reads_without_warnings(tmp_path):
    """bioformats2raw's OME/ folder is expected beside the series: zarr's
    warning about it on every listing is not shown to users."""
    store = synth.write_bioformats2raw(
        tmp_path / "s.zarr", [synth.random_scene((1, 1, 2, 30, 20), "int16", seed=5)]
    )
    proc = run_cli("biocode", store)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
