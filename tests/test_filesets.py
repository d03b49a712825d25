"""Filesets: multi-file OME-TIFF datasets (full XML in every part, or
BinaryOnly parts with a companion.ome) are one image, read once from any
member, with a raw-file code over all members and member-level change
detection. Never a code of part of the planes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import run_cli

from biocodes import synth
from biocodes.core.codes import raw_file_code
from biocodes.core.fingerprint import biocode
from biocodes.repository.manifest import build_manifest, read_manifest

SHAPE = (2, 2, 3, 24, 20)  # 12 planes over 3 files


@pytest.fixture
def scene():
    return synth.structured_scene(SHAPE, "uint16", seed=17)


@pytest.fixture
def multi(tmp_path, scene):
    """A 3-file OME-TIFF, XML in every file, and the same scene in one file."""
    files = synth.write_ome_tiff_fileset(tmp_path / "set", scene, parts=3)
    single = synth.write_ome_tiff(tmp_path / "single.ome.tif", scene)
    return files, single


@pytest.fixture
def companion(tmp_path, scene):
    files = synth.write_ome_tiff_fileset(
        tmp_path / "bo", scene, parts=3, companion="bo.companion.ome"
    )
    return files


def tree_code(folder: Path) -> str:
    tool = Path(sys.executable).parent / "iscc-sum"
    out = subprocess.run(
        [tool, "--tree", str(folder)], capture_output=True, text=True, check=True
    ).stdout
    return out.split()[0]


def test_each_member_gives_the_whole_image(multi, scene):
    files, single = multi
    want = [p["iscc_code"] for p in biocode(single)["parts"]]
    assert want == synth.expected_biocode(scene)
    for f in files:
        r = biocode(f)
        assert [p["iscc_code"] for p in r["parts"]] == want, f.name
        assert r["parts"][0]["dims"] == {"T": 2, "C": 2, "Z": 3, "Y": 24, "X": 20}
        assert r["entry"] == str(files[0])  # the first member holding the XML
        assert [m["path"] for m in r["files"]] == [g.name for g in files]


def test_companion_and_binaryonly_parts_give_the_whole_image(companion, scene):
    want = synth.expected_biocode(scene)
    for f in companion:
        r = biocode(f)
        assert [p["iscc_code"] for p in r["parts"]] == want, f.name
        assert r["entry"] == str(companion[-1])
        assert r["format"] == "ome-tiff-fileset"


def test_raw_code_is_iscc_sum_tree_over_the_members(multi, companion):
    # the folders hold only the members: iscc-sum --tree hashes the same
    # files in the same (TREEWALK) order
    for files in (multi[0], companion):
        want = tree_code(files[0].parent)
        for f in files:
            assert raw_file_code(f)["iscc_code"] == want
            assert biocode(f)["iscc_code"] == want
        size = sum(f.stat().st_size for f in files)
        assert raw_file_code(files[0])["filesize"] == size


def test_a_fileset_is_resolved_once_per_read(multi, monkeypatch):
    """The set a member belongs to is resolved once and handed down (state
    before and after, plane source, raw-file code): one parse per read."""
    from biocodes.sources import fileset

    calls = []
    resolve = fileset.resolve

    def counting(path):
        calls.append(path)
        return resolve(path)

    monkeypatch.setattr(fileset, "resolve", counting)
    files, _single = multi
    result = biocode(files[1])
    assert len(calls) == 1
    assert len(result["files"]) == len(files)


def test_missing_member_is_an_error_naming_it_never_a_partial_code(companion):
    companion[1].unlink()
    for f in (companion[0], companion[2], companion[3]):
        proc = run_cli("biocode", "--json", f)
        assert proc.returncode == 1
        obj = json.loads(proc.stdout)
        assert "parts" not in obj
        message = obj["error"]["message"]
        assert "part1.ome.tif" in message and "bo.companion.ome" in message
        assert "Traceback" not in proc.stderr


def test_missing_companion_is_an_error_naming_it(companion):
    companion[-1].unlink()
    proc = run_cli("biocode", "--json", companion[0])
    assert proc.returncode == 1
    obj = json.loads(proc.stdout)
    assert obj["error"]["type"] == "not_found"
    assert "bo.companion.ome" in obj["error"]["message"]


def test_truncation_is_measured_against_the_member_that_holds_the_page(multi, tmp_path):
    files, _ = multi
    # parts differ in size; a smaller entry never makes a sibling's page
    # look truncated ...
    assert biocode(files[0])["parts"]
    # ... and a truncated sibling is named
    data = files[2].read_bytes()
    files[2].write_bytes(data[: len(data) - 500])
    proc = run_cli("biocode", "--json", files[0])
    obj = json.loads(proc.stdout)
    assert proc.returncode == 1 and obj["error"]["type"] == "truncated"
    assert "part2.ome.tif" in obj["error"]["message"]


def test_handed_case_binaryonly(tmp_path):
    """The shared reader case (if present): every input gives the 4-plane code."""
    case = Path("/work/shared/cases/ometiff-binaryonly")
    if not case.exists():
        pytest.skip("shared reader cases not on this machine")
    want = json.loads((case / "expected.json").read_text())
    for item in want["inputs"]:
        r = biocode(case / item["path"])
        assert [p["iscc_code"] for p in r["parts"]] == item["expected"]["codes"]


def scan(root):
    out = root.parent / "manifest.parquet"
    build_manifest(out, {"repo": str(root)}, 1)
    return read_manifest(out)


def test_scan_groups_a_fileset_into_one_image(tmp_path, scene):
    root = tmp_path / "repo"
    synth.write_ome_tiff_fileset(root / "m", scene, parts=3)
    synth.write_ome_tiff_fileset(
        root / "c", scene, parts=2, companion="x.companion.ome"
    )
    synth.write_ome_tiff(root / "one.ome.tif", scene)
    rows = scan(root)
    assert [r["path"] for r in rows] == [
        "c/x.companion.ome",
        "m/part0.ome.tif",
        "one.ome.tif",
    ]
    assert all(r["error"] is None for r in rows)
    members = json.loads(rows[1]["members"])
    assert [m[0] for m in members] == [f"m/part{i}.ome.tif" for i in range(3)]
    assert rows[1]["size"] == sum(m[1] for m in members)
    assert rows[2]["members"] is None


def test_scan_reports_a_missing_member_on_the_sets_row(tmp_path, scene):
    root = tmp_path / "repo"
    files = synth.write_ome_tiff_fileset(
        root, scene, parts=3, companion="s.companion.ome"
    )
    files[2].unlink()
    rows = scan(root)
    assert [r["path"] for r in rows] == ["s.companion.ome"]
    assert rows[0]["error_type"] == "not_found"
    assert "part2.ome.tif" in rows[0]["error"]


def test_a_member_outside_the_root_is_refused(tmp_path, scene):
    root = tmp_path / "repo"
    synth.write_ome_tiff_fileset(
        tmp_path / "out", scene, parts=2, companion="o.companion.ome"
    )
    root.mkdir()
    xml = (tmp_path / "out" / "o.companion.ome").read_text()
    (root / "o.companion.ome").write_text(
        xml.replace('FileName="', 'FileName="../out/')
    )
    rows = scan(root)
    assert [r["error_type"] for r in rows] == ["outside_roots"]


def shard(tmp_path, root):
    from biocodes.repository.shard import run_shard

    manifest = tmp_path / "manifest.parquet"
    build_manifest(manifest, {"repo": str(root)}, 1)
    counts = run_shard(manifest, 0, tmp_path / "state", {"kind": "local"}, False)
    tables = {
        n: pq.read_table(tmp_path / "state" / f"{n}.parquet").to_pylist()
        for n in ("images", "scenes", "files", "errors")
    }
    return counts, tables


def test_shard_reads_a_set_once_and_rereads_it_when_a_member_changes(tmp_path, scene):
    root = tmp_path / "repo"
    files = synth.write_ome_tiff_fileset(root, scene, parts=3)
    counts, t = shard(tmp_path, root)
    assert counts["read"] == 1 and len(t["images"]) == 1
    assert [s["iscc_code"] for s in t["scenes"]] == synth.expected_biocode(scene)
    assert [(f["path"], f["size"]) for f in t["files"]] == [
        (f.name, f.stat().st_size) for f in files
    ]
    counts, _ = shard(tmp_path, root)
    assert counts["reused"] == 1
    # touch a member that is not the newest: the total's max mtime may not
    # move, the member's own does
    st = os.stat(files[1])
    os.utime(files[1], ns=(st.st_atime_ns, st.st_mtime_ns - 10**9))
    counts, t = shard(tmp_path, root)
    assert counts["reused"] == 0 and counts["rehashed"] == 1
    assert {f["path"]: f["mtime_ns"] for f in t["files"]}["part1.ome.tif"] == (
        st.st_mtime_ns - 10**9
    )
    # other bytes in a member: read again
    scene2 = scene.copy()
    scene2[1, 1, 2] += 1
    synth.write_ome_tiff_fileset(root, scene2, parts=3)
    counts, t = shard(tmp_path, root)
    assert counts["read"] == 1
    assert [s["iscc_code"] for s in t["scenes"]] == synth.expected_biocode(scene2)
    # a member deleted: an error row that names it
    files[2].unlink()
    counts, t = shard(tmp_path, root)
    assert [i["status"] for i in t["images"]] == ["error"]
    assert "part2.ome.tif" in t["errors"][0]["message"]
    assert t["scenes"] == []


def test_workflow_over_filesets_and_plates(tmp_path, scene):
    """The workflow (local profile) over a repository holding a 3-file
    OME-TIFF, a BinaryOnly set with its companion and two plates (v2, v3)
    with a damaged field each; then a member is touched and one deleted."""
    from test_plates import damage, plate_fields
    from test_workflow import run_workflow

    repo = tmp_path / "repo"
    multi = synth.write_ome_tiff_fileset(repo / "multi", scene, parts=3)
    bo = synth.write_ome_tiff_fileset(
        repo / "bo", scene, parts=2, companion="bo.companion.ome"
    )
    for v in (2, 3):
        p = synth.write_plate(repo / f"plate{v}.ome.zarr", plate_fields(), v)
        damage(p / "B" / "2" / "1")
    config = {"example": {"generate": False}, "shards": 2}
    proc = run_workflow(tmp_path, config)
    assert proc.returncode == 0, proc.stderr[-3000:]
    cat = tmp_path / "results" / "catalogue"

    def table(name):
        return pq.read_table(cat / name).to_pylist()

    images = {i["path"]: i for i in table("images")}
    assert sorted(images) == [
        "bo/bo.companion.ome",
        "multi/part0.ome.tif",
        "plate2.ome.zarr",
        "plate3.ome.zarr",
    ]
    assert all(i["status"] == "ok" for i in images.values())
    want = synth.expected_biocode(scene)
    scenes = table("scenes")
    for path in ("bo/bo.companion.ome", "multi/part0.ome.tif"):
        iid = images[path]["image_id"]
        assert [s["iscc_code"] for s in scenes if s["image_id"] == iid] == want
        assert images[path]["format"] == "ome-tiff-fileset"
    files = table("files")
    assert sorted(f["path"] for f in files) == sorted(
        f"{f.parent.name}/{f.name}" for f in [*multi, *bo]
    )
    plate_scenes = [s for s in scenes if s["plate"] is not None]
    assert len(plate_scenes) == 24
    assert [s["status"] for s in plate_scenes].count("error") == 2
    errors = table("errors")
    assert sorted((e["path"], e["scene_index"]) for e in errors) == [
        ("plate2.ome.zarr", 9),
        ("plate3.ome.zarr", 9),
    ]
    # verify says what it could not compare: a field unreadable then and now
    proc = run_cli("verify", tmp_path / "results")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "plate2.ome.zarr: OK (scene(s) 9 unreadable, as in the catalogue)" in (
        proc.stdout
    )
    # a member touched (older mtime: only the member's own state shows it),
    # another set's member deleted
    st = os.stat(multi[1])
    os.utime(multi[1], ns=(st.st_atime_ns, st.st_mtime_ns - 10**9))
    bo[1].unlink()
    proc = run_workflow(tmp_path, config)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = table("runs")[-1]
    assert run["images_rehashed"] == 1  # the touched set: same bytes, kept
    images = {i["path"]: i for i in table("images")}
    assert images["bo/bo.companion.ome"]["status"] == "error"
    assert "part1.ome.tif" in images["bo/bo.companion.ome"]["error"]
    assert images["multi/part0.ome.tif"]["status"] == "ok"


def test_a_renamed_single_file_ome_tiff_is_still_one_file(tmp_path, scene):
    """Bio-Formats names a file's own planes by its UUID and FileName: after
    a rename the UUID still says "this file", as Bio-Formats reads it."""
    files = synth.write_ome_tiff_fileset(tmp_path / "s", scene, parts=1)
    renamed = files[0].rename(tmp_path / "renamed.ome.tif")
    r = biocode(renamed)
    assert [p["iscc_code"] for p in r["parts"]] == synth.expected_biocode(scene)
    assert "files" not in r and r["format"] == "ome-tiff"


def write_ics_pair(folder: Path, scene) -> tuple[Path, Path]:
    """An ICS 1.0 pair: the header in pair.ics, the pixels in pair.ids."""
    folder.mkdir(parents=True, exist_ok=True)
    ics = synth.write_ics(folder / "pair.ics", scene, pair=True)
    return ics, ics.with_suffix(".ids")


def test_bioformats_multi_file_format_is_one_fileset(tmp_path, scene):
    """An ICS 1.0 pair read by Bio-Formats: its used files are the set's
    members (raw code over both, recorded in ``files``); in the workflow's
    shard a change to the pixel file alone re-reads it."""
    from biocodes.sources import bioformats

    if bioformats.problem() is not None:
        pytest.skip(bioformats.problem())
    root = tmp_path / "repo"
    ics, ids = write_ics_pair(root, scene)
    proc = run_cli("biocode", "--json", ics)
    assert proc.returncode == 0, proc.stderr[-2000:]
    r = json.loads(proc.stdout)
    assert [p["iscc_code"] for p in r["parts"]] == synth.expected_biocode(scene)
    assert [f["path"] for f in r["files"]] == ["pair.ics", "pair.ids"]
    assert r["iscc_code"] == tree_code(root)
    from biocodes.repository.shard import run_shard

    manifest = tmp_path / "manifest.parquet"

    def run():
        build_manifest(manifest, {"repo": str(root)}, 1, include=["*.ics"])
        counts = run_shard(manifest, 0, tmp_path / "state", {"kind": "local"}, False)
        files = pq.read_table(tmp_path / "state" / "files.parquet").to_pylist()
        images = pq.read_table(tmp_path / "state" / "images.parquet").to_pylist()
        return counts, files, images

    counts, files, images = run()
    assert [f["path"] for f in files] == ["pair.ics", "pair.ids"]
    assert images[0]["iscc_code"] == r["iscc_code"]
    assert run()[0]["reused"] == 1
    st = os.stat(ids)
    os.utime(ids, ns=(st.st_atime_ns, st.st_mtime_ns - 10**9))  # the .ids only
    counts, files, _ = run()
    assert counts["reused"] == 0 and counts["read"] == 1
    assert files[1]["mtime_ns"] == st.st_mtime_ns - 10**9


def test_binaryonly_parts_pointing_at_a_master_tiff(tmp_path, scene):
    """``BinaryOnly MetadataFile`` may name a TIFF of the set that holds the
    full XML (a master file) instead of a companion: the same image."""
    import tifffile

    files = synth.write_ome_tiff_fileset(tmp_path / "m", scene, parts=3)
    master = files[0]
    own = "urn:uuid:00000000-0000-0000-0000-000000000002"
    for f in files[1:]:
        with tifffile.TiffFile(f) as tif:
            data = [page.asarray() for page in tif.pages]
        xml = (
            f'<?xml version="1.0" encoding="UTF-8"?><OME xmlns="{synth.OME_NS}" '
            f'UUID="{own}"><BinaryOnly MetadataFile="{master.name}" '
            'UUID="urn:uuid:00000000-0000-0000-0000-000000000001"/></OME>'
        )
        tifffile.imwrite(
            f, np.stack(data), description=xml, metadata=None, photometric="minisblack"
        )
    want = synth.expected_biocode(scene)
    for f in files:
        r = biocode(f)
        assert [p["iscc_code"] for p in r["parts"]] == want
        assert r["entry"] == str(master)


def test_tiffdata_without_ifd_or_planecount_means_every_page(tmp_path, scene):
    """A TiffData with neither IFD nor PlaneCount maps all pages of its file,
    from its first plane on."""
    files = synth.write_ome_tiff_fileset(
        tmp_path / "w", scene, parts=2, companion="w.companion.ome"
    )
    xml = files[-1].read_text().replace(' IFD="0" PlaneCount="6"', "")
    files[-1].write_text(xml)
    assert "PlaneCount" not in xml
    r = biocode(files[-1])
    assert [p["iscc_code"] for p in r["parts"]] == synth.expected_biocode(scene)


def test_fifos_never_block_the_scan_or_a_set(tmp_path, scene):
    """A FIFO named like a member or a companion is refused, never opened
    (an open would wait for a writer forever)."""
    root = tmp_path / "repo"
    files = synth.write_ome_tiff_fileset(
        root, scene, parts=2, companion="f.companion.ome"
    )
    files[-1].unlink()
    os.mkfifo(files[-1])
    os.mkfifo(root / "pipe.ome.tif")
    proc = run_cli("biocode", "--json", files[0])
    assert proc.returncode == 1 and "f.companion.ome" in proc.stdout
    rows = scan(root)  # the scan opens no FIFO; the read refuses it
    assert [(r["path"], r["error_type"]) for r in rows] == [
        ("f.companion.ome", "unreadable"),
        ("pipe.ome.tif", None),
    ]
    proc = run_cli("biocode", "--json", root / "pipe.ome.tif")
    assert json.loads(proc.stdout)["error"]["type"] == "unreadable"


def test_the_scan_does_not_open_a_file_it_found_alone_and_that_kept_its_state(
    tmp_path, scene, monkeypatch
):
    """Whether a file starts a fileset is in its own bytes: a file the last
    scan listed as an image on its own, with the same size and mtime, is not
    opened again (its first bytes read, its XML parsed); a fileset's files,
    and a file whose mtime moved, are."""
    from biocodes.repository.manifest import plain_files
    from biocodes.sources import fileset

    root = tmp_path / "repo"
    synth.write_ome_tiff_fileset(root / "m", scene, parts=2)
    one = synth.write_ome_tiff(root / "one.ome.tif", scene)
    synth.write_png(root / "a.png", np.zeros((4, 4), np.uint8))
    parts = tmp_path / "parts"  # the shards' parts of the last manifest
    build_manifest(parts / "0.parquet", {"repo": str(root)}, 1)
    before = read_manifest(parts / "0.parquet")
    plain = plain_files(parts)
    assert sorted(p for p, _size, _mtime in plain) == [
        str(root / "a.png"),
        str(one),
    ]

    calls = []
    resolve = fileset.resolve

    def counting(path):
        calls.append(os.path.basename(path))
        return resolve(path)

    monkeypatch.setattr(fileset, "resolve", counting)
    again = tmp_path / "again.parquet"
    build_manifest(again, {"repo": str(root)}, 1, plain=plain)
    assert set(calls) == {"part0.ome.tif", "part1.ome.tif"}
    assert read_manifest(again) == before

    st = one.stat()
    os.utime(one, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    calls.clear()
    build_manifest(again, {"repo": str(root)}, 1, plain=plain)
    assert set(calls) == {"one.ome.tif", "part0.ome.tif", "part1.ome.tif"}
