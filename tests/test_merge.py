"""The catalogue merge's cost follows the changes: a table whose shard files
did not change is the previous file, linked, and what is rewritten is equal,
row for row and byte for byte, to a merge from scratch."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from biocodes.repository import tables
from biocodes.repository.catalogue import INPUTS_FILE, merge_run
from biocodes.repository.tables import SHARD_TABLES, TABLES, read_table, write_atomic

ROOT = Path(__file__).resolve().parents[1]
SHARDS = 3


def _scale():
    spec = importlib.util.spec_from_file_location(
        "scale", ROOT / "benchmarks" / "scale.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """Shard states of 600 synthetic images in 3 shards, and the same with
    1% of the images changed (the benchmark's generator)."""
    scale = _scale()
    base = tmp_path_factory.mktemp("synthetic")
    scale.synthetic_states(base / "quiet", 600, SHARDS)
    scale.synthetic_states(base / "changed", 600, SHARDS, changed=0.05)
    return scale, base


def states_copy(src: Path, dest: Path) -> list[Path]:
    shutil.copytree(src, dest)
    return [dest / str(k) for k in range(SHARDS)]


def merge(scale, states: list[Path], results: Path, run: int) -> dict:
    scale.synthetic_manifest(results / "m.parquet", run)
    return merge_run(states, results / "catalogue", {}, results / "m.parquet")


def contents(catalogue: Path) -> dict[str, pa.Table]:
    found = {n: pq.read_table(catalogue / f"{n}.parquet") for n in TABLES}
    found["runs"] = found["runs"].drop_columns(["finished", "versions"])
    return found


def test_quiet_tables_are_linked_and_equal_a_merge_from_scratch(synthetic, tmp_path):
    scale, base = synthetic
    states = states_copy(base / "quiet", tmp_path / "state")
    results = tmp_path / "results"
    merge(scale, states, results, 1)
    first = Path(os.path.realpath(results / "catalogue"))

    merge(scale, states, results, 2)  # nothing changed: every table linked
    second = Path(os.path.realpath(results / "catalogue"))
    assert second != first
    for name in (*SHARD_TABLES, "duplicates", "_merge/near_pairs"):
        old, new = first / f"{name}.parquet", second / f"{name}.parquet"
        assert os.stat(old).st_ino == os.stat(new).st_ino, name

    # one shard's views change (as a shard job writes them: a new file)
    views = read_table(states[1] / "views.parquet", "views")
    thumbs = pa.array(["t.png"] * views.num_rows, pa.string())
    views = views.set_column(
        views.schema.get_field_index("thumbnail"), "thumbnail", thumbs
    )
    os.unlink(states[1] / "views.parquet")
    write_atomic(views, states[1] / "views.parquet")
    merge(scale, states, results, 3)
    third = Path(os.path.realpath(results / "catalogue"))
    for name in SHARD_TABLES:
        linked = (
            os.stat(second / f"{name}.parquet").st_ino
            == os.stat(third / f"{name}.parquet").st_ino
        )
        assert linked == (name != "views"), name

    fresh = tmp_path / "fresh"
    merge(scale, states, fresh, 3)
    got, want = contents(results / "catalogue"), contents(fresh / "catalogue")
    for name in (*SHARD_TABLES, "duplicates"):
        assert got[name].equals(want[name]), name
        assert (results / f"catalogue/{name}.parquet").read_bytes() == (
            fresh / f"catalogue/{name}.parquet"
        ).read_bytes(), name


def test_changed_states_rewrite_tables_equal_to_a_rerun(synthetic, tmp_path):
    """Two catalogues with the same history are byte-identical, whether the
    changes table was appended to (later run ids) or sorted whole."""
    scale, base = synthetic
    built = []
    for k in range(2):
        states = states_copy(base / "quiet", tmp_path / f"state{k}")
        results = tmp_path / f"results{k}"
        merge(scale, states, results, 2)
        shutil.rmtree(tmp_path / f"state{k}")
        states = states_copy(base / "changed", tmp_path / f"state{k}")
        run = merge(scale, states, results, 3)
        assert run["images_changed"] > 0
        merge(scale, states, results, 1)  # an earlier run id: sorted whole
        built.append(results / "catalogue")
    for name in TABLES:
        if name != "runs":
            a, b = (c / f"{name}.parquet" for c in built)
            assert a.read_bytes() == b.read_bytes(), name
    changes = pq.read_table(built[0] / "changes.parquet")
    keys = [("run_id", "ascending"), ("root", "ascending"), ("path", "ascending")]
    assert changes.equals(changes.sort_by(keys))
    assert set(changes["run_id"].to_pylist()) == {
        "20261201T000000Z",
        "20261202T000000Z",
        "20261203T000000Z",
    }


def test_a_catalogue_from_before_the_inputs_file_is_merged_in_full(synthetic, tmp_path):
    scale, base = synthetic
    states = states_copy(base / "quiet", tmp_path / "state")
    results = tmp_path / "results"
    merge(scale, states, results, 1)
    (results / "catalogue" / INPUTS_FILE).unlink()  # an older catalogue
    first = Path(os.path.realpath(results / "catalogue"))
    merge(scale, states, results, 2)
    second = Path(os.path.realpath(results / "catalogue"))
    for name in SHARD_TABLES:
        old, new = first / f"{name}.parquet", second / f"{name}.parquet"
        assert os.stat(old).st_ino != os.stat(new).st_ino, name
        assert old.read_bytes() == new.read_bytes(), name


def test_sorted_row_groups_do_not_depend_on_chunks(tmp_path, monkeypatch):
    """The merge writes sorted rows in row groups of ROW_GROUP rows, taken one
    at a time: equal rows write equal bytes however they were chunked, and
    any Parquet reader sees one sorted table."""
    monkeypatch.setattr(tables, "ROW_GROUP", 7)
    ids = [f"{(i * 7919) % 100:032x}" for i in range(100)]
    table = pa.table(
        {"image_id": ids, "path": ids, "size": range(100), "mtime_ns": range(100)},
    )
    chunked = pa.concat_tables([table.slice(0, 33), table.slice(33)])
    paths = []
    for k, t in enumerate((table, chunked)):
        paths.append(tmp_path / f"{k}.parquet")
        write_atomic(tables.sorted_batches("files", t), paths[-1])
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert pq.ParquetFile(paths[0]).metadata.num_row_groups == 15
    again = tmp_path / "again.parquet"
    source = pq.ParquetFile(paths[0]).iter_batches(batch_size=5)
    write_atomic(tables.rebatch(tables.SCHEMAS["files"], source), again)
    assert again.read_bytes() == paths[0].read_bytes()
    got = pq.read_table(paths[0])
    assert got["image_id"].to_pylist() == sorted(ids)


def test_merging_a_run_again_records_it_once(synthetic, tmp_path):
    """A merge job that failed after swapping the catalogue in (writing the
    report) is run again by the next invocation: the run is recorded once,
    with the figures of its real merge, and no table changes."""
    scale, base = synthetic
    states = states_copy(base / "quiet", tmp_path / "state")
    results = tmp_path / "results"
    merge(scale, states, results, 2)
    shutil.rmtree(tmp_path / "state")
    states = states_copy(base / "changed", tmp_path / "state")
    first = merge(scale, states, results, 3)
    assert first["images_changed"] > 0
    before = contents(results / "catalogue")
    again = merge(scale, states, results, 3)
    assert again["run_id"] == first["run_id"]
    assert again["images_changed"] == first["images_changed"]
    after = contents(results / "catalogue")
    assert after["runs"]["run_id"].to_pylist() == [
        "20261202T000000Z",
        "20261203T000000Z",
    ]
    assert all(after[n].equals(before[n]) for n in TABLES)
