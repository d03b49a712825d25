"""The operator's view: commands that never pass silently (issue 18).

Each test here failed before its fix: a command given something that is not a
catalogue exits 0, verify depends on the working directory, an unknown
--root label is ignored, PNGs of two inputs with one name overwrite each
other, similar never compares view codes, skipped files are not counted.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from catalogues import build_catalogue
from conftest import run_cli
from PIL import Image

from biocodes import synth

ROOT = Path(__file__).resolve().parents[1]


def scene(seed, shape=(1, 2, 3, 48, 64)):
    return synth.structured_scene(shape, "uint16", seed=seed)


@pytest.fixture(scope="module")
def catalogued(tmp_path_factory):
    """A catalogue made as an older workflow made it: the root recorded as
    a relative path (``repo``) of the directory the run started in."""
    tmp = tmp_path_factory.mktemp("op")
    repo = tmp / "repo"
    repo.mkdir()
    synth.write_ome_tiff(repo / "a.ome.tif", scene(1))
    synth.write_ome_tiff(repo / "b.ome.tif", scene(2))
    rgb = synth.structured_scene((1, 1, 1, 96, 128), "uint8", seed=3)
    synth.write_png(repo / "c.png", np.dstack([rgb[0, 0, 0]] * 3))
    (repo / "notes.txt").write_text("not an image")
    (repo / "README").write_text("not an image")
    here = os.getcwd()
    os.chdir(tmp)
    try:
        build_catalogue({"repo": "repo"}, Path("results"))
    finally:
        os.chdir(here)
    return tmp


@pytest.mark.parametrize("command", ["verify", "similar"])
def test_a_non_catalogue_is_refused_in_one_line(tmp_path, command):
    (tmp_path / "empty").mkdir()
    for where in (tmp_path / "empty", ROOT):
        args = [command, where] + (
            ["ISCC:EEAQ2F2XHJ5HJH6C"] if command == "similar" else []
        )
        proc = run_cli(*args)
        assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
        assert proc.stdout == ""
        (line,) = proc.stderr.splitlines()
        assert line == f"biocodes: {where}: not a biocodes catalogue " + (
            "(no images and runs tables in it or in its catalogue/)"
        )


def test_verify_does_not_depend_on_the_working_directory(catalogued, tmp_path):
    results = catalogued / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "biocodes.cli", "verify", str(results)],
        cwd=tmp_path,  # not where the run started
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count(": OK") == 3
    assert f"{catalogued / 'repo' / 'a.ome.tif'}: OK" in proc.stdout


def test_verify_refuses_an_unknown_root_label(catalogued, tmp_path):
    proc = run_cli("verify", "--root", f"rpeo={tmp_path}", catalogued / "results")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip() == (
        "biocodes: --root rpeo=...: the catalogue has no root labelled 'rpeo' "
        "(its roots: repo)"
    )


def test_similar_file_compares_its_views_with_view_codes(catalogued, tmp_path):
    """A JPEG export of one view (the MIP of a 2-channel stack): its own
    ISCC-MIXED is far from the stack's (five views mixed), its view code is
    the stack's MIP view code."""
    import pyarrow.parquet as pq

    results = catalogued / "results"
    images = pq.read_table(results / "catalogue" / "images").to_pylist()
    (a,) = [i["image_id"] for i in images if i["path"] == "a.ome.tif"]
    views = pq.read_table(results / "catalogue" / "views").to_pylist()
    (mip,) = [
        v
        for v in views
        if v["image_id"] == a and v["strategy"] == "mip" and v["c"] == 0
    ]
    jpeg = tmp_path / "mip.jpg"
    Image.open(results / mip["thumbnail"]).save(jpeg, quality=85)
    proc = run_cli("similar", "--json", results, jpeg)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [(m["path"], m["match"]) for m in found] == [("a.ome.tif", "iscc_image")]
    assert found[0]["code"] == mip["iscc_image"] and found[0]["distance"] <= 4


def test_scan_counts_skipped_files_by_suffix(tmp_path):
    from collections import Counter

    from biocodes.repository.catalogue import skipped_files
    from biocodes.repository.manifest import build_manifest, describe_skipped, scan

    repo = tmp_path / "repo"
    (repo / "sub").mkdir(parents=True)
    synth.write_tiff(repo / "x.tif", scene(1)[0, 0])
    for name in ("a.txt", "sub/b.txt", "c.jpg", "README", "sub/skip.tif"):
        (repo / name).write_text("x")
    skipped = Counter()
    rows = scan({"r": str(repo)}, 1, exclude=["skip.tif"], skipped=skipped)
    assert [r["path"] for r in rows] == ["x.tif"]
    assert skipped == {".txt": 2, ".jpg": 1, "(none)": 1, ".tif": 1}
    assert describe_skipped(skipped) == (
        "skipped: 5 files not in include or excluded "
        "(by suffix: .txt 2, (none) 1, .jpg 1, .tif 1)"
    )
    build_manifest(tmp_path / "m.parquet", {"r": str(repo)}, 1, exclude=["skip.tif"])
    assert sum(skipped_files(tmp_path / "m.parquet").values()) == 5


@pytest.mark.parametrize("command", ["scenes", "views", "thumb"])
def test_inputs_sharing_a_file_name_get_their_own_pngs(tmp_path, command):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    one = synth.write_tiff(tmp_path / "a" / "x.tif", scene(1)[0, 0, 0])
    two = synth.write_tiff(tmp_path / "b" / "x.tif", scene(2)[0, 0, 0])
    out = tmp_path / "out"
    proc = run_cli(command, "-o", out, one, two)
    assert proc.returncode == 0, proc.stderr
    pngs = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert pngs and all(p.startswith(("a_x.tif", "b_x.tif")) for p in pngs), pngs
    firsts = (
        [p for p in pngs if p.startswith("a_")],
        [p for p in pngs if p.startswith("b_")],
    )
    assert len(firsts[0]) == len(firsts[1]) >= 1
    a, b = (np.asarray(Image.open(out / f[0])) for f in firsts)
    assert not np.array_equal(a, b)


def test_output_names_are_distinct():
    from biocodes.views.thumbnails import output_names

    names = output_names(["a/x.tif", "b/x.tif", "c/y.tif", "/d/a/x.tif", "y.zarr/"])
    assert (
        names
        == {
            "a/x.tif": "x.tif",
            "b/x.tif": "b_x.tif",
            "c/y.tif": "y.tif",
            "/d/a/x.tif": "d_a_x.tif",
            "y.zarr/": "y.zarr",
        }
        or len(set(names.values())) == 5
    )
    assert len(set(names.values())) == 5


def test_thumb_writes_one_png_per_image(tmp_path):
    small = scene(1, (1, 1, 1, 16, 16))
    big = scene(2, (1, 2, 5, 300, 200))
    path = synth.write_ome_tiff(tmp_path / "two.ome.tif", [small, big])
    proc = run_cli("thumb", "-o", tmp_path / "t", "--size", "128", path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"{tmp_path / 't' / 'two.ome.tif.png'} *{path}"
    img = Image.open(tmp_path / "t" / "two.ome.tif.png")
    assert img.size == (85, 128) and img.mode == "L"  # the larger scene
    missing = run_cli("thumb", "-o", tmp_path / "t", tmp_path / "nope.tif")
    assert missing.returncode == 1 and "nope.tif" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_check_mode_like_sha256sum(tmp_path):
    a = synth.write_ome_tiff(tmp_path / "a.ome.tif", [scene(1), scene(2)])
    b = synth.write_tiff(tmp_path / "b.tif", scene(3)[0, 0])
    c = synth.write_tiff(tmp_path / "c.tif", scene(4)[0, 0])
    for flag in ([], ["--json"]):
        codes = tmp_path / "codes.txt"
        codes.write_text(run_cli("biocode", *flag, a, b, c).stdout)
        proc = run_cli("check", codes)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert proc.stdout.splitlines() == [
            f"{a}#scene0: OK",
            f"{a}#scene1: OK",
            f"{b}#scene0: OK",
            f"{c}#scene0: OK",
        ]
    pixels = scene(3)[0, 0].copy()
    pixels[0, 1, 1] += 1
    synth.write_tiff(b, pixels)
    c.unlink()
    proc = run_cli("check", codes)
    assert proc.returncode == 1
    assert f"{b}#scene0: FAILED (pixels differ)" in proc.stdout
    assert f"{c}: MISSING" in proc.stdout
    assert f"{a}#scene1: OK" in proc.stdout
    assert "1 failed, 1 missing of 4 checked (a scene each" in proc.stderr
    # not a list of codes: one line, exit 2
    notes = tmp_path / "notes.txt"
    notes.write_text("hello\n")
    proc = run_cli("check", notes)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().endswith(
        "no codes found (expected the output of biocodes biocode)"
    )


def test_license_file_matches_pyproject():
    import tomllib

    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    license_ = meta["license"]
    text = (ROOT / "LICENSE").read_text()
    declared = license_ if isinstance(license_, str) else license_.get("text", "")
    assert declared == "Apache-2.0"
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text


def test_readme_says_how_to_get_the_commands():
    readme = (ROOT / "README.md").read_text()
    assert "source .venv/bin/activate" in readme
    assert "bash scripts/example.sh --configfile" in readme
    script = (ROOT / "scripts" / "example.sh").read_text()
    assert '"$@"' in script  # arguments reach snakemake


def _snakemake(tmp_path, config, *args):
    import yaml

    cfg = tmp_path / "user.yaml"
    cfg.write_text(yaml.safe_dump(config))
    return subprocess.run(
        [Path(sys.executable).parent / "snakemake", "--configfile", cfg, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_a_misspelt_config_key_is_one_line_with_the_allowed_keys(tmp_path):
    proc = _snakemake(tmp_path, {"shard": 3}, "-n", "--nolock")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert (
        "config: unknown key 'shard'; did you mean 'shards'? (allowed in config: "
        "cluster, duplicates, example, exclude," in out
    )
    assert "additionalProperties" not in out  # no schema dump
    assert len(out.splitlines()) < 10, out
    proc = _snakemake(tmp_path, {"views": {"max_view": 3}}, "-n", "--nolock")
    out = proc.stdout + proc.stderr
    assert "unknown key 'views.max_view'; did you mean 'max_views'?" in out


def test_the_main_command_still_runs_the_example(tmp_path):
    """No --configfile: the example is generated and scanned (results moved
    aside only so that an earlier example run here does not hide the job)."""
    results = f"results={tmp_path / 'results'}"
    proc = subprocess.run(
        [
            Path(sys.executable).parent / "snakemake",
            "-n",
            "--nolock",
            "--config",
            results,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "rule make_example:" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_a_user_config_with_roots_fingerprints_only_those(tmp_path):
    import pyarrow.parquet as pq

    repo = tmp_path / "lab"
    repo.mkdir()
    synth.write_tiff(repo / "x.tif", scene(1)[0, 0])
    results = tmp_path / "results"
    config = {"roots": {"lab": str(repo)}, "results": str(results)}
    dry = _snakemake(tmp_path, config, "-n", "--nolock")
    assert "make_example" not in dry.stdout + dry.stderr
    proc = _snakemake(tmp_path, config, "--nolock")
    assert proc.returncode == 0, proc.stderr[-3000:]
    images = pq.read_table(results / "catalogue" / "images").to_pylist()
    assert [(i["root"], i["path"]) for i in images] == [("lab", "x.tif")]
    (run,) = pq.read_table(results / "catalogue" / "runs").to_pylist()
    recorded = json.loads(run["config"])
    assert recorded["roots"] == {"lab": str(repo)}
    assert recorded["example"]["generate"] is False
    assert "example.done" not in os.listdir(results)
    log = (results / "logs" / "manifest.log").read_text()
    assert "skipped: no files" in log


def test_a_catalogue_from_before_timestamps_is_carried_on(catalogued, tmp_path):
    """runs.started/finished were ISO strings: the next merge reads them as
    timestamps and keeps the old run."""
    import shutil
    from datetime import datetime

    import pyarrow as pa
    import pyarrow.parquet as pq

    results = tmp_path / "results"
    shutil.copytree(catalogued / "results", results, symlinks=True)
    # a catalogue from before partitions: one runs file, old timestamps
    runs_file = results / "catalogue" / "runs.parquet"
    runs = pq.read_table(results / "catalogue" / "runs")
    shutil.rmtree(os.path.realpath(results / "catalogue" / "runs"))
    old = runs.drop_columns(["started", "finished", "images_touched"])
    old = old.append_column("started", pa.array(["2026-11-01T01:00:00+00:00"]))
    old = old.append_column("finished", pa.array(["2026-11-01T01:10:00+00:00"]))
    pq.write_table(old, runs_file)
    build_catalogue({"repo": catalogued / "repo"}, results)
    first, second = pq.read_table(results / "catalogue" / "runs").to_pylist()
    assert first["started"] == datetime.fromisoformat("2026-11-01T01:00:00+00:00")
    assert first["images_touched"] is None and second["images_touched"] == 0
    assert isinstance(second["started"], datetime)


def test_settle_roots(tmp_path):
    from biocodes.repository.config import ConfigError, settle_roots

    (tmp_path / "lab").mkdir()

    def default():
        return {
            "roots": {"example": "example"},
            "example": {"generate": True, "root": "example"},
        }

    # no user roots: the example, generated (it need not exist yet), absolute
    cfg = default()
    assert settle_roots(cfg, {}, tmp_path) == {"example": str(tmp_path / "example")}
    # user roots (merged by Snakemake over the example's): only theirs
    cfg = default()
    cfg["roots"]["lab"] = "lab"
    assert settle_roots(cfg, {"roots": {"lab": "lab"}}, tmp_path) == {
        "lab": str(tmp_path / "lab")
    }
    assert cfg["example"]["generate"] is False and list(cfg["roots"]) == ["lab"]
    # the example switched off (merged by Snakemake) and no other root
    cfg = default()
    cfg["example"]["generate"] = False
    with pytest.raises(ConfigError, match="no roots to scan"):
        settle_roots(cfg, {"example": {"generate": False}}, tmp_path)
    with pytest.raises(ConfigError, match=r"roots\.gone: 'gone' is not a directory"):
        settle_roots(default(), {"roots": {"gone": "gone"}}, tmp_path)


def test_the_summary_counts_in_words_people_read(tmp_path):
    """One image is "1 image", and the failures listed are counted from the
    table's metadata, not by loading every error row."""
    import pyarrow as pa

    from biocodes.repository.catalogue import summary
    from biocodes.repository.tables import SCHEMAS, to_table, write_atomic

    run = {}
    for f in SCHEMAS["runs"]:
        if pa.types.is_integer(f.type):
            run[f.name] = 1
        elif pa.types.is_string(f.type):
            run[f.name] = "x"
    run["versions_changed"] = ""
    write_atomic(to_table("runs", [run]), tmp_path / "runs.parquet")
    errors = [
        {
            "image_id": f"{i:04d}",
            "path": f"f{i}.tif",
            "stage": "read",
            "error_type": "unreadable",
            "message": "bad",
            "run_id": "x",
        }
        for i in range(25)
    ]
    write_atomic(to_table("errors", errors), tmp_path / "errors.parquet")
    text = summary(tmp_path)
    assert "1 image (1 ok, 1 failed), 1 scene in the catalogue" in text
    assert "pixels read for 1 image (1 scene," in text
    assert "1 file skipped" in text
    assert text.count("  failed: ") == 20 and "... and 5 more" in text
