"""TIFF routes around the checks (issue 24): every route to the pixels agrees
with what the file's pages hold.

Truth is the array a test wrote, turned into codes by
:func:`biocodes.synth.expected_biocode`; where a rule follows Bio-Formats, the
Bio-Formats reading of the same file is the second witness (its tests run the
CLI in a subprocess, so the JVM never lives in the test process).
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from biocodes import biocode, synth
from biocodes.infra.errors import UnreadableError
from biocodes.sources import _fallback, open_source
from biocodes.sources.base import Container, make_scene
from biocodes.sources.tiff import fold_modulo, inventory


def codes(path, **kw) -> list[str]:
    return [p["iscc_code"] for p in biocode(path, **kw)["parts"]]


def write_pages(path: Path, pages, description: str | None) -> Path:
    """One IFD per page, the description (if any) on the first."""
    with tifffile.TiffWriter(path) as tw:
        for k, p in enumerate(pages):
            tw.write(
                p,
                description=description if k == 0 else None,
                metadata=None,
                photometric="rgb" if p.ndim == 3 else "minisblack",
                contiguous=False,
            )
    return path


def bioformats_read(path: Path) -> dict:
    """What Bio-Formats gives for ``path`` (the CLI, ``--reader bioformats``)."""
    from biocodes.sources import bioformats

    if bioformats.problem() is not None:
        pytest.skip(f"Bio-Formats is not set up: {bioformats.problem()}")
    cli = [sys.executable, "-m", "biocodes.cli", "biocode", "--json"]
    out = subprocess.run(
        [*cli, "--reader", "bioformats", "--", str(path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    return json.loads(out.stdout)


def bfconvert(source: Path, target: Path) -> Path:
    """bfconvert (Bio-Formats' ImageConverter, from the same offline jar)."""
    from biocodes.sources import bioformats

    if bioformats.problem() is not None:
        pytest.skip(f"Bio-Formats is not set up: {bioformats.problem()}")
    cmd = [bioformats.java(), "-cp", str(bioformats.jar_path())]
    cmd += ["loci.formats.tools.ImageConverter", "-no-upgrade"]
    proc = subprocess.run(
        [*cmd, str(source), str(target)], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0 and target.is_file(), proc.stderr[-2000:]
    return target


# -- class 1: a description the pages contradict ----------------------------

SIX = synth.random_scene((6, 10, 12), "uint16", seed=24)

CONTRADICTED = {
    "images_lt": "ImageJ=1.54f\nimages=4\nslices=4\n",
    "images_gt": "ImageJ=1.54f\nimages=12\nslices=12\n",
    "csf_lt": "ImageJ=1.54f\nimages=6\nchannels=2\nslices=2\nhyperstack=true\n",
    "csf_gt": "ImageJ=1.54f\nimages=6\nchannels=2\nslices=3\nframes=2\n",
    "shaped_8_of_6": '{"shape": [8, 10, 12]}',
}


@pytest.mark.parametrize("name", sorted(CONTRADICTED))
def test_a_description_the_pages_contradict_reads_every_page(tmp_path, name):
    """ImageJ (images=, channels x slices x frames) or tifffile "shaped"
    descriptions that disagree with the 6 pages: the code is that of the 6
    pages in stored order (T), as Bio-Formats and ImageJ read them; before,
    the fallback hashed pages 0-3, or 8 planes read on past page 5."""
    path = write_pages(tmp_path / f"{name}.tif", list(SIX), CONTRADICTED[name])
    with open_source(path) as source:
        (scene,) = source.scenes
        assert (scene.size_t, scene.size_c, scene.size_z) == (6, 1, 1)
        assert source.format == "tiff" and "6 pages" in source.dropped
    assert codes(path) == synth.expected_biocode(SIX[:, None, None])


def test_the_fallback_must_account_for_every_page(tmp_path):
    """The mechanism: a fallback whose scenes are not exactly the container's
    pages gives no code. bioio-tifffile reads an ImageJ series of 4 images
    over 6 pages as 4 planes; the inventory of the native parse (tifffile's
    ImageJ series, 6 pages) refuses it, naming both counts."""
    path = write_pages(tmp_path / "ij.tif", list(SIX), CONTRADICTED["images_lt"])
    with tifffile.TiffFile(path) as tif:
        container = inventory(tif, list(tif.series))
    assert container.units == 6 and "says 4 planes" in container.declared
    with pytest.raises(UnreadableError) as caught:
        _fallback(str(path), None, "tiff", container)
    message = str(caught.value)
    assert "4 planes of 10x12" in message and "6 pages" in message


def test_container_check_counts_planes_by_shape():
    """Container.check: the same number of planes of another shape, or
    fewer or more planes, is refused; exactly the stored planes pass."""
    held = Container("pages", {(10, 12, 2): 6}, 6, "ImageJ description says 4 images")
    ok = make_scene("f", 0, "s", {"T": 6, "Y": 10, "X": 12}, np.uint16)
    held.check("f", [ok], "reader")
    for sizes in ({"T": 4, "Y": 10, "X": 12}, {"T": 8, "Y": 10, "X": 12}):
        bad = make_scene("f", 0, "s", sizes, np.uint16)
        with pytest.raises(UnreadableError, match="says 4 images; reader reads"):
            held.check("f", [bad], "reader")
    other = make_scene("f", 0, "s", {"T": 6, "Y": 12, "X": 10}, np.uint16)
    with pytest.raises(UnreadableError, match="6 planes of 12x10"):
        held.check("f", [other], "reader")


def test_imagej_contiguous_data_after_one_page_is_still_read(tmp_path):
    """ImageJ writes files over 4 GB as one IFD followed by every image's
    data: the description is not contradicted there, and the fallback's
    planes are what that page holds (the container check lets it through)."""
    a = synth.random_scene((4, 10, 12), "uint16", seed=25)
    path = tmp_path / "big.tif"
    tifffile.imwrite(path, a, imagej=True, truncate=True)
    with tifffile.TiffFile(path) as tif:
        assert len(tif.pages) == 1
    assert codes(path) == synth.expected_biocode(a[None, :, None])


def test_description_and_pages_agree_with_bioformats(tmp_path):
    """The second witness: Bio-Formats gives the same code for a
    contradicted ImageJ description and a contradicted shape description."""
    for name in ("images_lt", "shaped_8_of_6"):
        path = write_pages(tmp_path / f"{name}.tif", list(SIX), CONTRADICTED[name])
        got = bioformats_read(path)
        assert [p["iscc_code"] for p in got["parts"]] == codes(path)


# -- class 2: OME Modulo sub-axes fold into their parent --------------------

MODULO = {  # tifffile axes -> the OME-Pixels view (T, C, Z) Bio-Formats gives
    "TQYX": ((6, 2, 8, 9), (12, 1, 1)),  # other along T, split
    "QYX": ((5, 8, 9), (5, 1, 1)),  # other along T, renamed
    "TCQYX": ((2, 3, 2, 8, 9), (2, 6, 1)),  # other along C
    "CHYX": ((2, 3, 8, 9), (1, 6, 1)),  # lifetime along C
    "TEYX": ((3, 4, 8, 9), (12, 1, 1)),  # lambda along T
    "ZAYX": ((2, 3, 8, 9), (1, 1, 6)),  # angle along Z
    "ZPYX": ((2, 3, 8, 9), (1, 1, 6)),  # phase along Z
}


@pytest.mark.parametrize("axes", sorted(MODULO))
def test_ome_modulo_folds_into_its_parent_axis(tmp_path, axes):
    """An OME-TIFF with a Modulo annotation is read with the OME Pixels
    sizes, the sub-axis folded into its parent, as Bio-Formats reads it;
    before, "other" was walked as Z in stored order and lifetime, lambda,
    angle were refused ("axes don't match array")."""
    shape, (t, c, z) = MODULO[axes]
    a = synth.random_scene(shape, "uint16", seed=26)
    path = tmp_path / "m.ome.tif"
    tifffile.imwrite(path, a, ome=True, metadata={"axes": axes})
    with open_source(path) as source:
        (scene,) = source.scenes
        assert (scene.size_t, scene.size_c, scene.size_z) == (t, c, z)
    # the stored page order is the OME order: T outer, then C, then Z here
    pages = a.reshape(t, c, z, 8, 9)  # XYCZT (tifffile) = T, Z, C outer...
    with tifffile.TiffFile(path) as tif:
        order = tif.ome_metadata.split('DimensionOrder="')[1][:5]
    stored = {"XYCZT": "TZC", "XYZCT": "TCZ"}[order]
    pages = a.reshape([{"T": t, "C": c, "Z": z}[k] for k in stored] + [8, 9])
    tczyx = np.transpose(pages, [stored.index(k) for k in "TCZ"] + [3, 4])
    assert codes(path) == synth.expected_biocode(tczyx)


def test_ome_modulo_agrees_with_bioformats(tmp_path):
    a = synth.random_scene((2, 3, 2, 8, 9), "uint16", seed=27)
    path = tmp_path / "tcq.ome.tif"
    tifffile.imwrite(path, a, ome=True, metadata={"axes": "TCQYX"})
    got = bioformats_read(path)
    assert got["parts"][0]["dims"] == {"T": 2, "C": 6, "Z": 1, "Y": 8, "X": 9}
    assert [p["iscc_code"] for p in got["parts"]] == codes(path)


def test_fold_modulo_rules():
    assert fold_modulo("TQZC", (6, 2, 1, 1), "XYCZT") == ("TZC", (12, 1, 1))
    assert fold_modulo("QZC", (5, 1, 1), "XYCZT") == ("TZC", (5, 1, 1))
    assert fold_modulo("TCA", (2, 3, 4), "XYZCT") == ("TCZ", (2, 3, 4))
    with pytest.raises(ValueError):
        fold_modulo("ZTC", (1, 2, 3), "XYCZT")


# -- one more decision: a plain page sequence is T --------------------------


def test_plain_multipage_rgb_tiff_pages_are_t(tmp_path):
    """Two RGB pages, no OME or ImageJ metadata: T=2, C=3 (Bio-Formats; and
    the OME-TIFF bfconvert writes of it), not C=6 pages-outer."""
    a = synth.random_scene((2, 10, 12, 3), "uint8", seed=28)
    path = write_pages(tmp_path / "rgb2.tif", list(a), None)
    with open_source(path) as source:
        (scene,) = source.scenes
        assert (scene.size_t, scene.size_c, scene.size_z) == (2, 3, 1)
    want = synth.expected_biocode(np.moveaxis(a, -1, 1)[:, :, None])
    assert codes(path) == want
    ome = synth.write_ome_tiff(
        tmp_path / "rgb2.ome.tif", np.moveaxis(a, -1, 1)[:, :, None]
    )
    assert codes(ome) == want


def test_plain_multipage_tiffs_agree_with_bioformats(tmp_path):
    """Bio-Formats reads a plain page sequence as T, gray or RGB."""
    gray = synth.random_scene((3, 10, 12), "uint16", seed=29)
    rgb = synth.random_scene((2, 10, 12, 3), "uint8", seed=30)
    for path in (
        write_pages(tmp_path / "gray3.tif", list(gray), None),
        write_pages(tmp_path / "rgb2.tif", list(rgb), None),
    ):
        got = bioformats_read(path)
        with open_source(path) as source:
            scene = source.scenes[0]
        assert got["parts"][0]["dims"]["T"] == scene.size_t > 1
        assert [p["iscc_code"] for p in got["parts"]] == codes(path)


def test_bfconvert_of_a_plain_multipage_tiff_shares_its_code(tmp_path):
    """The OME-TIFF bfconvert makes of a plain page sequence (gray or RGB)
    names the pages T, and gets the code of the original."""
    gray = synth.random_scene((3, 10, 12), "uint16", seed=33)
    rgb = synth.random_scene((2, 10, 12, 3), "uint8", seed=34)
    for name, pages in (("gray3", gray), ("rgb2", rgb)):
        path = write_pages(tmp_path / f"{name}.tif", list(pages), None)
        ome = bfconvert(path, tmp_path / f"{name}.ome.tif")
        with open_source(ome) as source:
            assert source.format == "ome-tiff" and source.scenes[0].size_t > 1
        assert codes(ome) == codes(path)


def test_walk_rules_are_in_the_settings_key(monkeypatch):
    """A walk rule that changes codes re-reads every image: the rules'
    version is part of the settings key."""
    from biocodes.repository import shard
    from biocodes.sources import base

    before = shard.settings_key(False, None)
    monkeypatch.setattr(base, "WALK_RULES", "999")
    assert shard.settings_key(False, None) != before


# -- a regression on real files: descriptions never fail a scene ------------


def without_compression_tag(path: Path) -> Path:
    """Rename the Compression tag (259) of every IFD to an unknown private
    tag: the TIFF default (1, none) applies, and tifffile reports the
    compression as a plain int, as for ImageJ 1.51a's files (no such tag)."""
    data = path.read_bytes()
    entry = b"\x03\x01\x03\x00\x01\x00\x00\x00\x01\x00"  # tag 259 SHORT 1 = 1
    assert entry in data
    path.write_bytes(data.replace(entry, b"\xff\xfe" + entry[2:]))
    with tifffile.TiffFile(path) as tif:
        assert "Compression" not in tif.pages[0].tags
        assert type(tif.pages[0].compression) is int
    return path


def test_a_page_without_compression_tag_gets_its_code_and_codec(tmp_path):
    """hyperspy 1.7.6's ImageJ 1.51a files failed with "'int' object has no
    attribute 'name'" in the codec provenance."""
    a = synth.random_scene((2, 10, 12), "uint16", seed=31)
    path = tifffile.imwrite(tmp_path / "ij151.tif", a, imagej=True) or (
        tmp_path / "ij151.tif"
    )
    without_compression_tag(path)
    result = biocode(path)
    assert [p["iscc_code"] for p in result["parts"]] == synth.expected_biocode(
        a[None, :, None]
    )
    assert result["parts"][0]["codec"] == "none"


def test_a_failing_description_leaves_the_field_empty(tmp_path, caplog, monkeypatch):
    """The mechanism: a field that describes a scene (codec, decoder) never
    fails it; the field stays empty and the failure is logged once."""
    from biocodes.sources.tiff import TiffSource

    a = synth.random_scene((2, 10, 12), "uint16", seed=32)
    paths = [synth.write_tiff(tmp_path / f"{k}.tif", a) for k in range(2)]

    def broken(self, scene):
        raise AttributeError("'int' object has no attribute 'name'")

    caplog.set_level(logging.WARNING)
    monkeypatch.setattr(TiffSource, "decoding", broken)  # a fault, injected
    parts = [biocode(p)["parts"][0] for p in paths]
    assert all(p["iscc_code"] and p["codec"] is None for p in parts)
    logged = [r for r in caplog.records if "codec left empty" in r.getMessage()]
    assert len(logged) == 1


def test_report_says_walk_rules_changed_not_integrity():
    """New codes in the run whose walk rules changed are said to be that,
    not flagged as an integrity problem; a run from before the column had
    rules 1."""
    from biocodes.repository.report import _changes, walk_rules_change

    runs = [{"run_id": "a"}, {"run_id": "b", "walk_rules": "2"}]
    assert walk_rules_change(runs) == "1 → 2"
    assert walk_rules_change(runs[1:]) == ""
    assert walk_rules_change([runs[1], runs[1]]) == ""
    change = {
        "change": "changed",
        "codes_changed": True,
        "root": "r",
        "path": "rgb.tif",
        "previous_iscc_code": "ISCC:OLD",
        "iscc_code": "ISCC:NEW",
        "error": None,
    }
    page = "".join(_changes([change], 10, "1 → 2"))
    assert "walk rules changed" in page and "integrity problem (" not in page
    assert 'class="integrity"' not in page
    flagged = "".join(_changes([change], 10, ""))
    assert "integrity problem (" in flagged


def test_runs_say_when_the_walk_rules_changed():
    """runs.versions_changed (and so the run summary) names a walk-rules
    change; a run from before runs.walk_rules had rules 1."""
    from biocodes.repository.catalogue import _walk_rules_changed

    assert _walk_rules_changed([], "2") == ""
    assert _walk_rules_changed([{"walk_rules": None}], "2") == "walk rules 1 -> 2"
    assert _walk_rules_changed([{"walk_rules": "2"}], "2") == ""


# -- the fallback keeps the stored order or gives no code ------------------


def test_unnamed_runs_of_pages_reach_no_fallback_guess(tmp_path):
    """Two unnamed axes (tifffile's ``QQ``) over pages of depth 2 (a
    volumetric series, which TiffSource does not map page by page): the
    bioio-tifffile fallback named them T and C and walked C outer, so the
    planes came in another order than stored, a wrong code with exit 0.
    No reader can know which unnamed axis is outer: a named refusal."""
    a = (np.arange(2 * 3 * 2 * 4 * 5) % 251).astype(np.uint8).reshape(2, 3, 2, 4, 5)
    path = tmp_path / "volumes.tif"
    tifffile.imwrite(path, a, photometric="minisblack", volumetric=True, tile=(16, 16))
    with tifffile.TiffFile(path) as tif:
        assert tif.series[0].axes == "QQZYX" and len(tif.pages) == 6
    with pytest.raises(UnreadableError, match="2 unnamed axes longer than 1"):
        biocode(path)


def test_one_unnamed_axis_over_volumes_is_still_read(tmp_path):
    """One unnamed axis over volumetric pages: the fallback's walk (depth as
    Z outer, the pages inner) is the walk of the stored planes with the
    pages as T, the rule for unnamed pages."""
    a = (np.arange(3 * 2 * 4 * 5) % 251).astype(np.uint8).reshape(3, 2, 4, 5)
    path = tmp_path / "volumes.tif"
    tifffile.imwrite(path, a, photometric="minisblack", volumetric=True, tile=(16, 16))
    assert codes(path) == synth.expected_biocode([a[:, None]])
