"""The bad-input corpus (tests/corpus.py): in the library, the CLI and a whole
workflow run. Every bad file is a one-line error row; everything else gets
the same codes as when read on its own, and the run completes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pyarrow.parquet as pq
import pytest
import yaml
from corpus import ODD_NAMES, PICKLE_MARK, make_corpus, zarr_missing_chunk

from biocodes.core.fingerprint import biocode
from biocodes.infra.errors import BiocodeError, display_path
from biocodes.infra.limits import Limits

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SNAKEMAKE = os.path.join(os.path.dirname(sys.executable), "snakemake")
#: decided by the scan's policy (roots), not by the file: not library cases
SCAN_ONLY = {"outside.tif", "outside-dir"}


def without_dac(cmd: list) -> list:
    """Run ``cmd`` without the root's power to read any file, so chmod 000
    means what it says (as for any user but root)."""
    if os.geteuid() != 0:
        return cmd
    drop = "-dac_override,-dac_read_search"
    return ["setpriv", "--bounding-set", drop, "--inh-caps", drop, *cmd]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("corpus")
    cases = make_corpus(tmp / "root", tmp / "outside")
    return tmp, {c.name: c for c in cases}


def test_library_gives_one_line_error_or_the_right_code(corpus):
    tmp, cases = corpus
    for name, case in cases.items():
        if name in SCAN_ONLY | {"unreadable.tif"}:
            continue
        path = tmp / "root" / name
        if case.kind is None:
            assert biocode(path)["parts"], name
            continue
        with pytest.raises(BiocodeError) as info:
            biocode(path)
        err = info.value
        assert err.kind == case.kind, str(err)
        message = str(err)
        assert "\n" not in message and len(message) < 600, message
        assert message.startswith(display_path(path) + ": "), message
    assert not (tmp / "outside" / PICKLE_MARK).exists()


def test_enormous_header_fails_before_allocation(corpus):
    """The 10^4 x 10^6 x 10^6 header, read in a process that may not allocate
    more than 1 GiB: a too_large error, not a MemoryError or a kill."""
    tmp, _ = corpus
    code = (
        "import resource, sys; from biocodes.core.fingerprint import biocode\n"
        "resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))\n"
        "from biocodes.infra.errors import TooLargeError\n"
        "for p in sys.argv[1:]:\n"
        "    try: biocode(p)\n"
        "    except TooLargeError as e: print(e.kind)\n"
    )
    paths = [tmp / "root" / n for n in ("huge.tif", "huge.ome.zarr", "huge.png")]
    proc = subprocess.run(
        [sys.executable, "-c", code, *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["too_large"] * 3


def test_limits_are_configurable(corpus):
    tmp, _ = corpus
    good = tmp / "root" / "good.ome.tif"  # 3 planes of 48 x 40 uint16
    with pytest.raises(BiocodeError, match=r"per-plane limit of 3\.00 kiB") as info:
        biocode(good, limits=Limits(max_plane_bytes=3 * 1024))
    assert info.value.kind == "too_large"
    with pytest.raises(BiocodeError, match="per-scene limit"):
        biocode(good, limits=Limits(max_scene_bytes=10_000))
    assert biocode(good, limits=Limits(max_plane_bytes=3840, max_scene_bytes=11520))
    assert Limits.from_config({"max_plane_bytes": "1 MiB"}).max_plane_bytes == 1 << 20


def test_missing_chunks_read_as_fill_value_unless_refused(tmp_path):

    path = zarr_missing_chunk(tmp_path / "lost-one.ome.zarr", every=False)
    (part,) = biocode(path)["parts"]
    assert part["chunks_absent"] == 1
    with pytest.raises(BiocodeError, match="missing_chunks is error"):
        biocode(path, limits=Limits(allow_missing_chunks=False))


def test_cli_odd_names_and_unreadable_file(corpus):
    """Names with spaces, quotes, a newline, a non-UTF-8 byte and a leading
    dash; a chmod 000 file for a process that lacks root's override."""
    tmp, _ = corpus
    names = [*ODD_NAMES, "unreadable.tif"]
    cmd = [sys.executable, "-m", "biocodes.cli", "biocode", "--json", "--"]
    proc = subprocess.run(
        without_dac(cmd + [os.fsencode(tmp / "root" / n) for n in names]),
        capture_output=True,
        timeout=300,
    )
    assert proc.returncode == 1
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(lines) == len(names)
    for name, line in zip(ODD_NAMES, lines):
        assert "error" not in line and line["parts"], line
        assert os.fsencode(line["path"]) == os.fsencode(tmp / "root" / name)
    assert lines[-1]["error"]["type"] == "unreadable"
    assert "permission denied" in lines[-1]["error"]["message"].lower()
    stderr = proc.stderr.decode().strip().splitlines()
    assert len(stderr) == 1 and stderr[0].startswith("biocodes: ")


def test_changing_file_is_flagged_not_stored(tmp_path):
    """A file that grows while its planes are read: an error, not a code."""
    from biocodes import synth

    path = synth.write_ome_tiff(
        tmp_path / "growing.ome.tif", synth.random_scene((1, 1, 4, 64, 64), "uint16")
    )

    def append(scene, done, total):
        with open(path, "ab") as f:
            f.write(b"\0" * 16)

    with pytest.raises(BiocodeError) as info:
        biocode(path, progress=append)
    assert info.value.kind == "changed_during_read"
    assert "read again next run" in str(info.value)


# --- the whole workflow over the corpus -------------------------------------


def run(tmp, results: str, env=None) -> subprocess.CompletedProcess:
    config = {
        "roots": {"corpus": str(tmp / "root")},
        "results": str(tmp / results),
        "example": {"generate": False},
        "shards": 3,
        "threads": 2,
    }
    cfg = tmp / f"{results}.yaml"
    cfg.write_text(yaml.safe_dump(config))
    return subprocess.run(
        without_dac([SNAKEMAKE, "--configfile", str(cfg), "--nolock"]),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, **(env or {})},
    )


#: credentials in the environment, as a user's object-store keys would be
SECRETS = {
    "AWS_SECRET_ACCESS_KEY": "sentinel-aws-secret-5f2a",
    "BIOCODES_HTTP_PASSWORD": "sentinel-http-password-9c1e",
}


@pytest.fixture(scope="module")
def workflow_run(corpus):
    tmp, cases = corpus
    proc = run(tmp, "results", env=SECRETS)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return tmp, cases, proc


def catalogue(tmp, name, results="results"):
    return pq.read_table(tmp / results / "catalogue" / f"{name}.parquet").to_pylist()


def test_workflow_records_every_case_and_completes(workflow_run):
    tmp, cases, proc = workflow_run
    images = {i["path"]: i for i in catalogue(tmp, "images")}
    errors = {e["path"]: e for e in catalogue(tmp, "errors")}
    expected = {display_path(n): c for n, c in cases.items()}
    assert set(images) == set(expected), set(images) ^ set(expected)
    for path, case in expected.items():
        image = images[path]
        if case.kind is None:
            assert image["status"] == "ok", (path, image["error"])
            assert path not in errors
            continue
        assert image["status"] == "error" and image["iscc_code"] is None, path
        error = errors[path]
        assert error["error_type"] == case.kind, (path, error)
        if case.stage:
            assert error["stage"] == case.stage, (path, error)
        # one line, naming the file by its catalogue path, not its abspath
        message = error["message"]
        assert "\n" not in message and str(tmp / "root") not in message
        assert error["message"].startswith(path + ": "), error["message"]
        assert image["error"] == error["message"]
    assert not (tmp / "outside" / PICKLE_MARK).exists()
    bad = sum(c.kind is not None for c in cases.values())
    assert f"({len(cases) - bad} ok, {bad} failed)" in proc.stdout + proc.stderr


def test_credentials_never_reach_what_the_run_writes(workflow_run):
    """Catalogue, logs, report, run stamp, thumbnails and Snakemake's output:
    no byte of a credential from the environment."""
    tmp, _, proc = workflow_run
    files = [p for p in (tmp / "results").rglob("*") if p.is_file()]
    assert any(p.name == "report.html" for p in files)
    assert any(p.suffix == ".log" for p in files)
    for secret in SECRETS.values():
        assert secret not in proc.stdout + proc.stderr
        for path in files:
            assert secret.encode() not in path.read_bytes(), path


def test_workflow_codes_equal_the_library(workflow_run):
    tmp, cases, _ = workflow_run
    scenes = catalogue(tmp, "scenes")
    by_path = {}
    for s in scenes:
        by_path.setdefault(s["path"], []).append(s["iscc_code"])
    for name, case in cases.items():
        if case.kind is None:
            parts = biocode(tmp / "root" / name)["parts"]
            assert by_path[display_path(name)] == [p["iscc_code"] for p in parts]


def test_workflow_rerun_retries_only_the_failures(workflow_run):
    tmp, cases, _ = workflow_run
    proc = run(tmp, "results")
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = catalogue(tmp, "runs")[-1]
    bad = sum(c.kind is not None for c in cases.values())
    refused = sum(c.stage == "scan" for c in cases.values())
    assert last["images_reused"] == len(cases) - bad
    # every failure is tried again: read, or refused again at the scan (a
    # 0-byte file, a symlink out of the root), whose pixels are never read
    assert refused and last["images_refused"] == refused
    assert last["images_read"] == bad - refused
    assert last["images_error"] == last["images_still_failing"] == bad


def test_file_changed_after_the_scan_is_retried_next_run(tmp_path):
    """Written to between the scan and the read: an error row this run, then
    read normally by the next run's scan."""
    from biocodes import synth
    from biocodes.repository.manifest import build_manifest
    from biocodes.repository.shard import run_shard

    root = tmp_path / "repo"
    root.mkdir()
    path = synth.write_tiff(root / "a.tif", synth.random_scene((1, 1, 2, 16, 16)))
    manifest = tmp_path / "manifest.parquet"
    build_manifest(manifest, {"repo": str(root)}, 1)
    with open(path, "ab") as f:  # still being written
        f.write(b"\0" * 8)
    local = {"kind": "local"}
    run_shard(manifest, 0, tmp_path / "state", local, simprints=False)
    errors = pq.read_table(tmp_path / "state/errors.parquet").to_pylist()
    assert [e["error_type"] for e in errors] == ["changed_during_read"]
    assert pq.read_table(tmp_path / "state/scenes.parquet").num_rows == 0
    build_manifest(manifest, {"repo": str(root)}, 1)  # the next night's scan
    counts = run_shard(manifest, 0, tmp_path / "state", local, simprints=False)
    assert counts["read"] == 1
    images = pq.read_table(tmp_path / "state/images.parquet").to_pylist()
    assert [i["status"] for i in images] == ["ok"]
