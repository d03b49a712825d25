"""Remote OME-Zarr: the same stores on disk, over HTTP (http.server) and over
S3 (moto in server mode), all on loopback, must give the same codes; a flaky
or dead server gives the right codes or an error row, and never a hang."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import unicodedata
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from servers import FlakyProxy, counting_http_server, http_server, s3_server, upload

from biocodes import synth
from biocodes.core.codes import raw_file_code
from biocodes.core.fingerprint import biocode
from biocodes.infra.errors import BiocodeError
from biocodes.infra.limits import Limits
from biocodes.infra.remote import treewalk_keys
from biocodes.repository.manifest import from_file, scan
from biocodes.repository.shard import fingerprint_image

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = os.path.join(os.path.dirname(sys.executable), "snakemake")
STORES = ("img.zarr", "v2.zarr", "series.zarr")
#: short deadlines so that failure tests end in seconds
FAST = Limits(remote_timeout=1.0, remote_retries=4, remote_concurrency=3)
#: moto takes any keys; a sentinel secret shows whether one leaks anywhere
SECRET = "sentinel-s3-secret-7b3d1e"
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": SECRET,
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """A repository of three stores: zarr v3, zarr v2 and a two-series
    bioformats2raw tree."""
    root = tmp_path_factory.mktemp("remote") / "repo"
    root.mkdir()
    synth.write_ome_zarr(
        root / "img.zarr", synth.random_scene((2, 2, 3, 64, 80), "uint16", seed=3)
    )
    synth.write_ome_zarr(
        root / "v2.zarr",
        synth.random_scene((1, 3, 2, 40, 50), "uint8", seed=4),
        zarr_format=2,
    )
    synth.write_bioformats2raw(
        root / "series.zarr",
        [
            synth.random_scene((1, 1, 2, 30, 20), "int16", seed=5),
            synth.random_scene((3, 1, 1, 16, 24), "int16", seed=6),
        ],
    )
    return root


@pytest.fixture(scope="module")
def s3(repo):
    """moto's S3 on loopback holding the repository under s3://bucket/repo."""
    with pytest.MonkeyPatch.context() as mp, s3_server() as endpoint:
        for k, v in S3_ENV.items():
            mp.setenv(k, v)
        mp.setenv("AWS_ENDPOINT_URL", endpoint)
        for store in STORES:
            upload(endpoint, repo / store, "bucket", "repo")
        yield endpoint


def summary(result: dict) -> tuple:
    """Everything of a biocode that depends on the content."""
    return (
        result["iscc_code"],
        result["format"],
        [
            (p["scene_index"], p["scene_name"], p["iscc_code"], p["dims"], p["dtype"])
            for p in result["parts"]
        ],
    )


def test_same_codes_from_disk_http_and_s3(repo, s3):
    with http_server(repo) as web:
        for store in STORES:
            local = summary(biocode(repo / store))
            assert summary(biocode(f"{web}/{store}")) == local, store
            assert summary(biocode(f"s3://bucket/repo/{store}")) == local, store
    assert len(local[2]) == 2  # the series store has two scenes


def test_a_remote_store_is_downloaded_once(repo):
    """The raw-file walk keeps each key on disk for the pixel walk: the bytes
    served are the store's size (directory listings aside), not twice it."""
    for store in STORES:
        size = sum(f.stat().st_size for f in (repo / store).rglob("*") if f.is_file())
        with counting_http_server(repo) as (web, sent):
            result = biocode(f"{web}/{store}")
        assert summary(result) == summary(biocode(repo / store))
        keys = sum(n for path, n in sent.items() if not path.endswith("/"))
        assert keys <= 1.05 * size, (store, keys, size)
        # without the cache each chunk comes twice
        with counting_http_server(repo) as (web, sent):
            biocode(f"{web}/{store}", limits=Limits(remote_cache_bytes=0))
        twice = sum(n for path, n in sent.items() if not path.endswith("/"))
        assert twice > 1.5 * size, (store, twice, size)


def test_a_remote_image_is_located_once(repo, monkeypatch):
    """One RemoteStore per read (one connection pool, one key cache), handed
    to the state, the zarr store and the raw-file walk; before the Location
    each of them made its own."""
    from biocodes.infra.remote import RemoteStore

    made = []
    init = RemoteStore.__init__

    def counting(self, url, limits=None):
        made.append(url)
        init(self, url, limits)

    monkeypatch.setattr(RemoteStore, "__init__", counting)
    with http_server(repo) as web:
        result = biocode(f"{web}/img.zarr")
    assert summary(result) == summary(biocode(repo / "img.zarr"))
    assert made == [f"{web}/img.zarr"]


def test_treewalk_over_keys_is_iscc_sums_treewalk(tmp_path):
    """Names that sort differently as bytes, NFC and NFD; ignore files first;
    .isccignore patterns; *.iscc.json left out: as iscc-sum walks a disk."""
    from iscc_sum.treewalk import treewalk_iscc

    tree = tmp_path / "store.zarr"
    names = [
        "b.bin",
        "a.bin",
        "Z.bin",
        ".isccignore",
        ".gitignore",
        "skipped.tmp",
        "meta.iscc.json",
        "sub/" + unicodedata.normalize("NFD", "é.bin"),
        "sub/e.bin",
        "sub/deeper/x.bin",
        "sub/cache/y.tmp",
        "zz/1",
    ]
    for i, name in enumerate(names):
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_bytes(b"*.tmp\n" if "ignore" in name else bytes([i]) * 99)
    expected = [p.relative_to(tree).as_posix() for p in treewalk_iscc(tree)]
    keys = [p.relative_to(tree).as_posix() for p in tree.rglob("*") if p.is_file()]
    got = list(treewalk_keys(keys, lambda k: (tree / k).read_bytes()))
    assert got == expected
    assert "skipped.tmp" not in got and "meta.iscc.json" not in got
    with http_server(tmp_path) as web:
        remote = raw_file_code(f"{web}/store.zarr")
    assert remote == raw_file_code(tree)  # equals `iscc-sum --tree`


def test_flaky_servers_give_the_same_codes(repo, s3, monkeypatch):
    """500s, dropped connections and a stalled answer (longer than the
    deadline) are retried; never more than the concurrency limit at once."""
    local = {store: summary(biocode(repo / store)) for store in STORES}
    with http_server(repo) as web:
        flaky = FlakyProxy(
            web,
            fail_every=4,
            drop_every=7,
            stall_every=37,
            stall=3,
            client_timeout=FAST.remote_timeout,
        )
        with flaky.running() as url:
            for store in STORES:
                assert summary(biocode(f"{url}/{store}", limits=FAST)) == local[store]
    assert flaky.faults >= 10, flaky.faults
    assert flaky.max_in_flight <= FAST.remote_concurrency
    flaky = FlakyProxy(
        s3,
        fail_every=5,
        drop_every=9,
        stall_every=31,
        stall=3,
        client_timeout=FAST.remote_timeout,
    )
    with flaky.running() as url:
        monkeypatch.setenv("AWS_ENDPOINT_URL", url)
        for store in STORES:
            got = biocode(f"s3://bucket/repo/{store}", limits=FAST)
            assert summary(got) == local[store]
    assert flaky.faults >= 5, flaky.faults
    assert flaky.max_in_flight <= FAST.remote_concurrency


def _row(url: str) -> dict:
    return {
        "image_id": "0" * 16,
        "root": "web",
        "path": "img.zarr",
        "abspath": url,
        "size": -1,
        "mtime_ns": -1,
        "error": None,
    }


@pytest.mark.parametrize("mode", ["failing", "stalled"])
def test_dead_server_is_an_error_row_not_a_hang(repo, mode):
    """A server that answers only 500s, or never answers: a one-line error
    row within a bounded time."""
    limits = Limits(remote_timeout=0.5, remote_retries=2, remote_concurrency=2)
    with http_server(repo) as web:
        proxy = (
            FlakyProxy(web, always=True)
            if mode == "failing"
            else FlakyProxy(web, stall_every=1, stall=60, max_faults_per_path=99)
        )
        with proxy.running() as url:
            start = time.monotonic()
            out = fingerprint_image(_row(f"{url}/img.zarr"), False, limits=limits)
            took = time.monotonic() - start
    assert took < 30, took
    (error,) = out["errors"]
    assert out["images"][0]["status"] == "error"
    assert error["error_type"] == "unreadable"
    assert "failed 3 times" in error["message"], error["message"]
    assert "\n" not in error["message"]


def test_server_without_listings_gives_pixel_codes_and_says_why_no_raw_code(repo):
    local = biocode(repo / "img.zarr")
    with http_server(repo, listing=False) as web:
        remote = biocode(f"{web}/img.zarr")
        out = fingerprint_image(_row(f"{web}/img.zarr"), False)
    assert [p["iscc_code"] for p in remote["parts"]] == [
        p["iscc_code"] for p in local["parts"]
    ]
    assert remote["iscc_code"] is None
    assert "TREEWALK" in remote["note"]
    image = out["images"][0]
    assert image["status"] == "ok" and image["iscc_code"] is None
    assert "does not list" in image["note"]


def test_missing_remote_chunk_is_absent_or_an_error_as_configured(repo, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(repo / "img.zarr", copy / "img.zarr")
    (copy / "img.zarr" / "0" / "c" / "1" / "0" / "2" / "0" / "0").unlink()
    with http_server(copy) as web:
        parts = biocode(f"{web}/img.zarr")["parts"]
        assert [p["chunks_absent"] for p in parts] == [1]
    refuse = Limits(missing_chunks="error")
    with http_server(copy) as web, pytest.raises(BiocodeError) as info:
        biocode(f"{web}/img.zarr", limits=refuse)
    assert info.value.kind == "unreadable"
    assert "is missing from the store" in str(info.value)


def test_remote_roots_and_manifest_urls(repo, s3, tmp_path):
    with http_server(repo.parent) as web:
        rows = scan({"web": f"{web}/repo", "s3": "s3://bucket/repo"}, 2)
    assert sorted((r["root"], r["path"]) for r in rows) == sorted(
        (root, store) for root in ("web", "s3") for store in STORES
    )
    assert all(r["is_store"] and r["size"] > 0 and r["mtime_ns"] > 0 for r in rows)
    with http_server(repo.parent, listing=False) as web:
        (row,) = scan({"web": f"{web}/repo"}, 2)
    assert row["error_type"] == "unreadable"
    assert "manifest" in row["error"]
    listed = tmp_path / "list.csv"
    listed.write_text(
        "path\ns3://bucket/repo/img.zarr\ns3://elsewhere/img.zarr\n", encoding="utf-8"
    )
    rows = from_file(listed, 2, {"s3": "s3://bucket/repo"})
    by_path = {r["path"]: r for r in rows}
    assert by_path["img.zarr"]["root"] == "s3"
    assert by_path["img.zarr"]["error"] is None
    assert by_path["s3://elsewhere/img.zarr"]["error_type"] == "outside_roots"


def test_cli_takes_urls(repo):
    from conftest import run_cli

    with http_server(repo) as web:
        proc = run_cli("biocode", f"{web}/img.zarr", "--remote-timeout", "5")
    local = run_cli("biocode", repo / "img.zarr")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[0] == local.stdout.split()[0]
    assert proc.stdout.splitlines()[1:] == local.stdout.splitlines()[1:]


#: columns that name where a store is, not what it holds
WHERE = {
    "image_id",
    "root",
    "path",
    "mtime_ns",
    "worker",
    "slurm_job_id",
    "run_id",
    "thumbnail",
}


def test_workflow_rows_equal_for_disk_http_and_s3(repo, s3, tmp_path):
    """The whole workflow over three roots holding the same stores: every
    catalogue row agrees apart from where the store is."""
    with http_server(repo) as web:
        config = {
            "roots": {"disk": str(repo), "web": web, "s3": "s3://bucket/repo"},
            "results": str(tmp_path / "results"),
            "example": {"generate": False},
            "shards": 2,
            "threads": 2,
        }
        cfg = tmp_path / "config.yaml"
        cfg.write_text(yaml.safe_dump(config))
        proc = subprocess.run(
            [SNAKEMAKE, "--configfile", str(cfg), "--nolock"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=900,
            env={**os.environ},
        )
    assert proc.returncode == 0, proc.stderr[-4000:]
    cat = tmp_path / "results" / "catalogue"
    images = pq.read_table(cat / "images.parquet").to_pylist()
    assert len(images) == 3 * len(STORES)
    assert {i["status"] for i in images} == {"ok"}
    roots = {i["image_id"]: i["root"] for i in images}

    def by_root(table: str) -> dict[str, list]:
        found: dict[str, list] = {"disk": [], "web": [], "s3": []}
        for r in pq.read_table(cat / f"{table}.parquet").to_pylist():
            found[roots[r["image_id"]]].append(
                sorted((k, str(v)) for k, v in r.items() if k not in WHERE)
            )
        return {k: sorted(v) for k, v in found.items()}

    for table in ("images", "scenes", "views"):
        rows = by_root(table)
        assert rows["disk"], table
        assert rows["web"] == rows["disk"], table
        assert rows["s3"] == rows["disk"], table
    # the S3 secret reached no file the run wrote, nor its output
    leaked = [
        p
        for p in (tmp_path / "results").rglob("*")
        if p.is_file() and SECRET.encode() in p.read_bytes()
    ]
    assert not leaked
    assert SECRET not in proc.stdout + proc.stderr
