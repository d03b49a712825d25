"""OME-Zarr as real writers make it (issue 24): absent chunks read as the
fill value in every route (directory, sharded, zipped, remote) and are
counted; a scene with no stored chunk is an error; NGFF axes by their type;
bioformats2raw scenes in the order of the OME group's ``series``.

Stores are written with the writers' defaults (zarr-python 3's
``write_empty_chunks=False``, bioio-ome-zarr's OMEZarrWriter); the expected
code is always that of the full numpy array that was written.
"""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import zarr
from servers import _Quiet, _serve, http_server

from biocodes import synth
from biocodes.core.fingerprint import biocode
from biocodes.infra.errors import UnreadableError, UnsupportedError
from biocodes.infra.limits import Limits
from biocodes.repository.history import changes_table
from biocodes.repository.tables import SCHEMAS


def _parts(path, **kw) -> list[tuple[str, int | None]]:
    return [
        (p["iscc_code"], p.get("chunks_absent")) for p in biocode(path, **kw)["parts"]
    ]


def _sparse(shape=(1, 2, 3, 32, 32), dtype="uint16", seed=1) -> np.ndarray:
    """Random pixels with all-zero regions, as a sparse acquisition has: the
    last plane (one chunk: the writer leaves it out) and a corner of the
    first (a stored chunk with zeros in it)."""
    a = synth.random_scene(shape, dtype, seed=seed)
    a[0, -1, -1] = 0
    a[0, 0, 0, :8, :8] = 0
    return a


def _ngff(
    path: Path,
    a: np.ndarray,
    axes: list,
    zarr_format: int = 3,
    chunks=None,
    shards=None,
    fill_value=0,
) -> Path:
    """One NGFF image written by zarr-python with its defaults (all-fill
    chunks left out)."""
    root = zarr.open_group(str(path), mode="w", zarr_format=zarr_format)
    array = root.create_array(
        "0",
        shape=a.shape,
        dtype=a.dtype,
        chunks=chunks or (1,) * (a.ndim - 2) + a.shape[-2:],
        shards=shards,
        fill_value=fill_value,
    )
    array[...] = a
    scale = [{"type": "scale", "scale": [1.0] * a.ndim}]
    ms = {"axes": axes, "datasets": [{"path": "0", "coordinateTransformations": scale}]}
    if zarr_format == 3:
        root.attrs["ome"] = {"version": "0.5", "multiscales": [ms]}
    else:
        root.attrs["multiscales"] = [{"version": "0.4", **ms}]
    return path


TCZYX = [
    {"name": "t", "type": "time"},
    {"name": "c", "type": "channel"},
    {"name": "z", "type": "space"},
    {"name": "y", "type": "space"},
    {"name": "x", "type": "space"},
]


def _chunk_files(store: Path) -> list[Path]:
    return [
        p
        for p in (store / "0").rglob("*")
        if p.is_file() and p.name not in ("zarr.json", ".zarray", ".zattrs")
    ]


# -- absent chunks read as the fill value, counted ----------------------------


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_writer_defaults_leave_out_fill_chunks_and_they_read_as_fill(
    tmp_path, zarr_format
):
    """bioio-ome-zarr's OMEZarrWriter on zarr-python 3 leaves out every
    all-zero chunk; the store is healthy and gives the array's code."""
    a = _sparse()
    store = synth.write_ome_zarr(
        tmp_path / "s.ome.zarr", a, zarr_format=zarr_format, levels=1
    )
    assert len(_chunk_files(store)) == a.shape[1] * a.shape[2] - 1  # one left out
    assert _parts(store) == [(synth.expected_biocode(a)[0], 1)]
    with pytest.raises(UnreadableError, match="missing_chunks is error"):
        biocode(store, limits=Limits(missing_chunks="error"))


def test_nonzero_fill_value_is_what_an_absent_chunk_holds(tmp_path):
    a = np.full((1, 1, 2, 16, 16), 7, np.uint8)
    a[0, 0, 0, 3, 4] = 200
    store = _ngff(tmp_path / "f.ome.zarr", a, TCZYX, zarr_format=2, fill_value=7)
    assert len(_chunk_files(store)) == 1
    assert _parts(store) == [(synth.expected_biocode(a)[0], 1)]


def test_sharded_missing_shard_and_missing_inner_chunk_read_as_fill(tmp_path):
    """v3 sharding: a shard the writer left out counts its inner chunks
    inside the array (edge shards are partial), an empty entry of a stored
    shard's index counts one."""
    a = synth.random_scene((1, 1, 2, 20, 20), "uint16", seed=4)
    a[0, 0, 1] = 0  # plane 1: every shard left out (9 inner chunks)
    a[0, 0, 0, :8, :8] = 0  # plane 0: one inner chunk of a stored shard
    store = _ngff(
        tmp_path / "sh.ome.zarr",
        a,
        TCZYX,
        chunks=(1, 1, 1, 8, 8),
        shards=(1, 1, 1, 16, 16),
    )
    assert len(_chunk_files(store)) == 4  # the 4 shards of plane 0
    assert _parts(store) == [(synth.expected_biocode(a)[0], 10)]
    with pytest.raises(UnreadableError, match="missing_chunks is error"):
        biocode(store, limits=Limits(missing_chunks="error"))
    # one policy: an inner chunk left out of a stored shard is refused too
    inner = _ngff(
        tmp_path / "in.ome.zarr",
        a[:, :, :1],
        TCZYX,
        chunks=(1, 1, 1, 8, 8),
        shards=(1, 1, 1, 16, 16),
    )
    assert _parts(inner) == [(synth.expected_biocode(a[:, :, :1])[0], 1)]
    with pytest.raises(UnreadableError, match=r"inner chunks: 1\).*is error"):
        biocode(inner, limits=Limits(missing_chunks="error"))


def _zip(store: Path, out: Path, drop: set[str] = frozenset()) -> Path:
    """An .ozx: the store's files at the zip's root, stored uncompressed."""
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        for f in sorted(store.rglob("*")):
            name = f.relative_to(store).as_posix()
            if f.is_file() and name not in drop:
                z.write(f, name)
    return out


def test_zipped_store_goes_through_the_checked_store(tmp_path):
    """An .ozx reads through the same checked store as a directory: a
    removed data entry is counted (and refused under missing_chunks=error)
    exactly as the same store unzipped; no entry at all is an error."""
    a = synth.random_scene((1, 2, 1, 16, 16), "uint8", seed=5)
    store = synth.write_ome_zarr(tmp_path / "z.ome.zarr", a, levels=1)
    whole = _zip(store, tmp_path / "whole.ozx")
    assert biocode(whole)["format"] == "ome-zarr"
    assert _parts(whole) == [(synth.expected_biocode(a)[0], 0)]
    gone = _chunk_files(store)[0].relative_to(store).as_posix()
    cut = _zip(store, tmp_path / "cut.ozx", {gone})
    (store / gone).unlink()
    (after,) = _parts(store)
    assert _parts(cut) == [after] and after[1] == 1
    assert after[0] != synth.expected_biocode(a)[0]
    for path in (cut, store):
        with pytest.raises(UnreadableError, match="missing_chunks is error"):
            biocode(path, limits=Limits(missing_chunks="error"))
    empty = _zip(store, tmp_path / "empty.ozx", set(_names(store)))
    with pytest.raises(UnreadableError, match="all 2 chunks of image"):
        biocode(empty)


def _names(store: Path) -> list[str]:
    return [p.relative_to(store).as_posix() for p in _chunk_files(store)]


def test_no_stored_chunk_is_an_error_naming_the_separator(tmp_path):
    """ome-zarr-py#343: chunks stored under '.' keys while the metadata says
    '/': every chunk is absent. An error naming the likely cause, never a
    code of fill values."""
    a = synth.random_scene((1, 1, 2, 16, 16), "uint8", seed=6)
    store = synth.write_ome_zarr(tmp_path / "sep.ome.zarr", a, zarr_format=2, levels=1)
    meta = json.loads((store / "0" / ".zarray").read_text())
    assert meta.get("dimension_separator") == "/"
    for f in _chunk_files(store):
        flat = ".".join(f.relative_to(store / "0").parts)
        f.rename(store / "0" / flat)
    with pytest.raises(
        UnreadableError, match=r"all 2 chunks of image .* missing.*separator"
    ):
        biocode(store)


def test_absent_chunk_on_a_web_server_is_a_404_any_other_failure_an_error(
    tmp_path,
):
    a = _sparse((1, 1, 2, 16, 16), "uint8", seed=7)
    store = synth.write_ome_zarr(tmp_path / "w" / "w.zarr", a, levels=1)
    with http_server(tmp_path / "w") as web:
        assert _parts(f"{web}/w.zarr") == [(synth.expected_biocode(a)[0], 1)]
    (failing,) = _chunk_files(store)
    key = "/" + failing.relative_to(tmp_path / "w").as_posix()

    class Broken(_Quiet):
        def send_head(self):
            if self.path == key:
                self.send_error(503, "injected")
                return None
            return super().send_head()

    handler = functools.partial(Broken, directory=str(tmp_path / "w"))
    limits = Limits(remote_timeout=2.0, remote_retries=1)
    with _serve(handler) as server:
        url = f"http://127.0.0.1:{server.server_address[1]}/w.zarr"
        with pytest.raises(UnreadableError, match="failed 2 times"):
            biocode(url, limits=limits)


def test_absent_chunk_on_s3_is_a_404_read_as_fill(tmp_path, monkeypatch):
    from servers import s3_server, upload

    a = _sparse((1, 1, 2, 16, 16), "uint8", seed=15)
    store = synth.write_ome_zarr(tmp_path / "s3.zarr", a, levels=1)
    for k, v in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(k, v)
    with s3_server() as endpoint:
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        upload(endpoint, store, "bucket", "repo")
        got = _parts("s3://bucket/repo/s3.zarr")
    assert got == [(synth.expected_biocode(a)[0], 1)]


def test_missing_chunks_config_and_its_old_key():
    assert Limits().missing_chunks == "fill"
    assert Limits.from_config({"missing_chunks": "error"}).missing_chunks == "error"
    assert Limits.from_config({"allow_missing_chunks": False}).missing_chunks == "error"
    assert Limits.from_config({"allow_missing_chunks": True}).missing_chunks == "fill"
    assert Limits(allow_missing_chunks=False).missing_chunks == "error"
    with pytest.raises(ValueError, match="contradicts"):
        Limits.from_config({"missing_chunks": "fill", "allow_missing_chunks": False})
    with pytest.raises(ValueError, match="must be one of"):
        Limits.from_config({"missing_chunks": "zero"})


def test_cli_reports_chunks_absent_and_takes_the_policy(tmp_path):
    a = _sparse((1, 2, 1, 16, 16), "uint8", seed=8)
    store = synth.write_ome_zarr(tmp_path / "c.ome.zarr", a, levels=1)
    cmd = [sys.executable, "-m", "biocodes.cli", "biocode", "--json", str(store)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    (part,) = json.loads(out.stdout)["parts"]
    assert part["chunks_absent"] == 1
    assert part["iscc_code"] == synth.expected_biocode(a)[0]
    out = subprocess.run(
        [*cmd[:4], "--missing-chunks", "error", *cmd[4:]],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 1 and "missing_chunks is error" in out.stderr


def test_history_flags_a_scene_whose_absent_count_changed():
    """Same codes, another count of absent chunks: a ``chunks_absent``
    change (an older catalogue without counts flags nothing)."""

    def tables(counts: list[int | None]) -> dict[str, pa.Table]:
        n = len(counts)
        images = {
            "image_id": [f"i{k}" for k in range(n)],
            "root": ["r"] * n,
            "path": [f"p{k}" for k in range(n)],
            "status": ["ok"] * n,
            "size": [1] * n,
            "mtime_ns": [1] * n,
            "iscc_code": ["A"] * n,
            "error": [None] * n,
        }
        scenes = {
            "image_id": [f"i{k}" for k in range(n)],
            "scene_index": [0] * n,
            "iscc_code": ["S"] * n,
            "chunks_absent": counts,
        }
        pick = SCHEMAS["images"]
        return {
            "images": pa.table(
                images, schema=pa.schema([pick.field(c) for c in images])
            ),
            "scenes": pa.table(
                scenes,
                schema=pa.schema([SCHEMAS["scenes"].field(c) for c in scenes]),
            ),
        }

    rows, _ = changes_table(tables([3, 3, None, 0]), tables([3, 5, 4, 0]), "run")
    assert rows.to_pydict()["image_id"] == ["i1"]
    assert rows.to_pydict()["change"] == ["chunks_absent"]


# -- NGFF axes by name and type ------------------------------------------------


def test_custom_axis_beside_time_is_refused_naming_it(tmp_path):
    """ome-zarr-py's write_image with a custom axis 'tile' beside 't': not
    two T axes (a code of 2 of the 6 planes), a refusal naming 'tile'."""
    a = synth.random_scene((2, 3, 16, 16), "uint8", seed=9)
    axes = [
        {"name": "t", "type": "time"},
        {"name": "tile"},
        {"name": "y", "type": "space"},
        {"name": "x", "type": "space"},
    ]
    store = _ngff(tmp_path / "tile.ome.zarr", a, axes)
    with pytest.raises(UnsupportedError, match="custom axis 'tile'"):
        biocode(store)


def test_space_axes_by_type_not_by_name(tmp_path):
    """depth, height, width of type space are Z, Y, X (the last two space
    axes are Y, X; a third is Z)."""
    a = synth.random_scene((2, 3, 12, 10), "uint16", seed=10)
    axes = [
        {"name": "ch", "type": "channel"},
        {"name": "depth", "type": "space"},
        {"name": "height", "type": "space"},
        {"name": "width", "type": "space"},
    ]
    store = _ngff(tmp_path / "dhw.ome.zarr", a, axes)
    assert _parts(store)[0][0] == synth.expected_biocode(a[None])[0]


@pytest.mark.parametrize(
    "axes, message",
    [
        (["t", "t", "y", "x"], "axis 't' twice"),
        (
            [{"name": "a", "type": "time"}, {"name": "b", "type": "time"}, "y", "x"],
            "more than one time axis",
        ),
        (
            ["c", {"name": "w", "type": "space"}, "z", "y", "x"],
            "4 space axes",
        ),
    ],
)
def test_duplicate_axes_are_refused_naming_them(tmp_path, axes, message):
    a = synth.random_scene((2,) * (len(axes) - 2) + (8, 8), "uint8", seed=11)
    store = _ngff(tmp_path / "dup.ome.zarr", a, axes)
    with pytest.raises(UnsupportedError, match=message):
        biocode(store)


# -- bioformats2raw: the OME group's series order ------------------------------


def _b2r(path: Path, groups: dict[str, np.ndarray], series: list[str]) -> Path:
    """A bioformats2raw tree as bioformats2raw writes it: image groups and an
    OME group whose ``series`` lists them."""
    if path.exists():
        shutil.rmtree(path)
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    root.attrs["bioformats2raw.layout"] = 3
    for key, a in groups.items():
        synth.write_ome_zarr(path / key, a, zarr_format=2, levels=1, name=key)
    ome = root.create_group("OME")
    ome.attrs["series"] = series
    return path


def test_bioformats2raw_series_order_and_named_series(tmp_path):
    one = synth.random_scene((1, 1, 1, 8, 8), "uint8", seed=12)
    two = synth.random_scene((1, 1, 2, 8, 8), "uint8", seed=13)
    swapped = _b2r(tmp_path / "b.zarr", {"0": one, "1": two}, ["1", "0"])
    got = biocode(swapped)["parts"]
    assert [p["iscc_code"] for p in got] == synth.expected_biocode([two, one])
    named = _b2r(tmp_path / "n.zarr", {"beta": two, "alpha": one}, ["beta", "alpha"])
    got = biocode(named)["parts"]
    assert [p["iscc_code"] for p in got] == synth.expected_biocode([two, one])
    assert [p["scene_name"] for p in got] == ["beta", "alpha"]
    # a listed series the tree does not hold is an error, never a dropped scene
    short = _b2r(tmp_path / "s.zarr", {"0": one, "1": two}, ["0", "1", "2"])
    with pytest.raises(UnreadableError, match="lists series '2'"):
        biocode(short)
    zarr.open_group(str(short / "2"), mode="w", zarr_format=2)
    with pytest.raises(UnreadableError, match="holds no multiscales"):
        biocode(short)


def test_verify_flags_a_scene_whose_absent_count_changed(tmp_path):
    """Same pixels from a store that now holds other chunks than the
    catalogue says (a copy that lost an all-fill chunk's file, or a rewrite
    with empty chunks written): FAILED, naming the counts."""
    import pyarrow.parquet as pq

    from biocodes.repository.tables import to_table
    from biocodes.repository.verify import verify

    a = _sparse((1, 1, 2, 16, 16), "uint8", seed=14)
    store = synth.write_ome_zarr(tmp_path / "root" / "v.ome.zarr", a, levels=1)
    now = biocode(store)
    cat = tmp_path / "catalogue"
    cat.mkdir()

    def catalogue(count: int) -> list[dict]:
        tables = {
            "runs": [
                {
                    "run_id": "r1",
                    "config": json.dumps({"roots": {"r": str(store.parent)}}),
                }
            ],
            "images": [
                {
                    "image_id": "i",
                    "root": "r",
                    "path": store.name,
                    "status": "ok",
                    "iscc_code": now["iscc_code"],
                }
            ],
            "scenes": [
                {
                    "image_id": "i",
                    "scene_index": 0,
                    "iscc_code": now["parts"][0]["iscc_code"],
                    "chunks_absent": count,
                }
            ],
        }
        for name, rows in tables.items():
            pq.write_table(to_table(name, rows), cat / f"{name}.parquet")
        return list(verify(cat))

    assert [r["status"] for r in catalogue(1)] == ["OK"]
    (flagged,) = catalogue(0)
    assert flagged["status"] == "FAILED"
    assert "chunks absent from the store changed (scene 0: 0 → 1)" in flagged["detail"]


def test_report_lists_scenes_with_absent_chunks_apart_and_capped(tmp_path):
    from datetime import UTC, datetime

    from biocodes.repository.report import render
    from biocodes.repository.tables import TABLES, to_table, write_atomic

    rows = {name: [] for name in TABLES}
    rows["runs"].append(
        {
            "run_id": "r1",
            "started": datetime(2026, 12, 1, 1, 0, tzinfo=UTC),
            "finished": datetime(2026, 12, 1, 1, 5, tzinfo=UTC),
            "versions": "{}",
        }
    )
    for i, count in enumerate([0, None, 3, 7, 2]):
        rows["scenes"].append(
            {"image_id": f"i{i}", "path": f"s{i}.zarr", "scene_index": 0}
            | {"dtype": "uint8", "status": "ok", "chunks_absent": count}
            | {k: 1 for k in ("size_t", "size_c", "size_z", "size_y", "size_x")}
        )
    out = tmp_path / "catalogue"
    for name, items in rows.items():
        write_atomic(to_table(name, items), out / f"{name}.parquet")
    html = render(out, max_list=2)
    section = html[html.index("Scenes with absent chunks (3)") :]
    section = section[: section.index("</table>")]
    assert "s3.zarr" in section and "s2.zarr" in section  # the most first
    assert "s4.zarr" not in section and "s0.zarr" not in section
    assert "… and 1 more in catalogue/scenes/" in html
