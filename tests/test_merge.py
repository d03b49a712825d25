"""The catalogue merge's cost follows the changes: each table is a
directory of partitions (one per shard); a partition whose shard files did
not change is the previous file, linked, and what is rewritten is equal, row
for row and byte for byte, to a merge from scratch. A catalogue written by
the code before partitions (single files) holds the same rows and is
migrated on its next merge."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from catalogues import scale_benchmark

from biocodes.repository import tables
from biocodes.repository.catalogue import (
    FAILING_DIR,
    INPUTS_FILE,
    PAIRS_FILE,
    merge_run,
)
from biocodes.repository.tables import (
    SHARD_TABLES,
    SORT_KEYS,
    TABLES,
    read_catalogue_table,
    read_table,
    write_atomic,
)

ROOT = Path(__file__).resolve().parents[1]
SHARDS = 3
#: main before the partitioned catalogue: its merge writes single files
BEFORE_PARTITIONS = "792b6fc"  # (with plane digests, before partitions)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """Shard states of 600 synthetic images in 3 shards, and the same with
    5% of the images changed (the benchmark's generator)."""
    scale = scale_benchmark()
    base = tmp_path_factory.mktemp("synthetic")
    scale.synthetic_states(base / "quiet", 600, SHARDS)
    scale.synthetic_states(base / "changed", 600, SHARDS, changed=0.05)
    scale.synthetic_states(base / "two", 600, 2, changed=0.05)
    return scale, base


def states_copy(src: Path, dest: Path) -> list[Path]:
    shutil.copytree(src, dest)
    return sorted((p for p in dest.iterdir()), key=lambda p: int(p.name))


def merge(scale, states: list[Path], results: Path, run: int) -> dict:
    scale.synthetic_manifest(results / "m.parquet", run)
    return merge_run(states, results / "catalogue", {}, results / "m.parquet")


def contents(catalogue: Path) -> dict[str, pa.Table]:
    """Every table, whatever its layout, sorted by its keys and every
    column (a partitioned table is sorted within each partition)."""
    found = {}
    for name in TABLES:
        table = read_catalogue_table(catalogue, name)
        if name == "runs":
            table = table.drop_columns(["finished", "versions"])
        keys = [*SORT_KEYS[name], "run_id"] if name == "runs" else SORT_KEYS[name]
        sortable = [
            c
            for c in table.column_names
            if not pa.types.is_list(table.schema.field(c).type)
        ]
        order = [*keys, *(c for c in sortable if c not in keys)]
        found[name] = table.sort_by([(c, "ascending") for c in order])
    return found


def files(catalogue: Path) -> dict[str, Path]:
    """The catalogue's files by their path inside it."""
    root = Path(os.path.realpath(catalogue))
    return {str(p.relative_to(root)): p for p in sorted(root.rglob("*")) if p.is_file()}


def inode(path: Path) -> int:
    return os.stat(path).st_ino


def test_quiet_partitions_are_linked_and_equal_a_merge_from_scratch(
    synthetic, tmp_path
):
    scale, base = synthetic
    states = states_copy(base / "quiet", tmp_path / "state")
    results = tmp_path / "results"
    merge(scale, states, results, 1)
    first = files(results / "catalogue")
    for name in SHARD_TABLES:
        assert [f"{name}/part-{k:04d}.parquet" in first for k in range(SHARDS)]
    assert "changes/run-20261201T000000Z.parquet" in first
    assert "runs/run-20261201T000000Z.parquet" in first
    assert "duplicates/part-0000.parquet" in first

    merge(scale, states, results, 2)  # nothing changed: every partition linked
    second = files(results / "catalogue")
    assert second.keys() - first.keys() == {
        "changes/run-20261202T000000Z.parquet",
        "runs/run-20261202T000000Z.parquet",
    }
    for name, path in first.items():
        if name != INPUTS_FILE:
            assert inode(path) == inode(second[name]), name

    # one shard's views change (as a shard job writes them: a new file)
    views = read_table(states[1] / "views.parquet", "views")
    thumbs = pa.array(["t.png"] * views.num_rows, pa.string())
    views = views.set_column(
        views.schema.get_field_index("thumbnail"), "thumbnail", thumbs
    )
    os.unlink(states[1] / "views.parquet")
    write_atomic(views, states[1] / "views.parquet")
    merge(scale, states, results, 3)
    third = files(results / "catalogue")
    rewritten = {n for n in second if inode(second[n]) != inode(third[n])}
    # the code index part of the partition whose views changed is written
    # again, no other (tests/test_codeindex.py checks what it holds)
    # (the failed images of a rewritten partition are noted again: bookkeeping)
    tables = {n for n in rewritten if not n.startswith(("_index/", FAILING_DIR))}
    assert tables == {"views/part-0001.parquet", INPUTS_FILE}
    index = {n for n in rewritten - tables if n.startswith("_index/")}
    assert index and all("/part-0001-" in n for n in index), index

    fresh = tmp_path / "fresh"
    merge(scale, states, fresh, 3)
    got, want = contents(results / "catalogue"), contents(fresh / "catalogue")
    built = files(fresh / "catalogue")
    for name in (*SHARD_TABLES, "duplicates"):
        assert got[name].equals(want[name]), name
    for name, path in built.items():
        if not name.startswith(("runs/", "changes/", "_merge/")):
            assert path.read_bytes() == third[name].read_bytes(), name


def _one_image_changed(state: Path) -> str:
    """Give one image of a shard new pixels (a new scene code), as its
    shard job would write them: new files."""
    images = read_table(state / "images.parquet", "images")
    scenes = read_table(state / "scenes.parquet", "scenes")
    ok = scenes.filter(pc.equal(scenes["status"], "ok"))
    iid = ok["image_id"][0].as_py()
    codes = ok["iscc_code"].to_pylist()
    other = next(c for c in codes if c != codes[0])
    mine = pc.equal(scenes["image_id"], iid)
    code = pc.if_else(mine, other, scenes["iscc_code"])  # a valid, other code
    scenes = scenes.set_column(
        scenes.schema.get_field_index("iscc_code"), "iscc_code", code
    )
    for name, table in (("images", images), ("scenes", scenes)):
        os.unlink(state / f"{name}.parquet")
        write_atomic(table, state / f"{name}.parquet")
    return iid


def test_a_one_image_change_rewrites_its_partitions_only(synthetic, tmp_path):
    scale, base = synthetic
    states = states_copy(base / "quiet", tmp_path / "state")
    results = tmp_path / "results"
    merge(scale, states, results, 1)
    before = files(results / "catalogue")
    iid = _one_image_changed(states[2])
    run = merge(scale, states, results, 2)
    after = files(results / "catalogue")
    rewritten = {n for n in before if inode(before[n]) != inode(after[n])}
    # derived: the index, and the failed images of the rewritten partition
    rewritten = {n for n in rewritten if not n.startswith(("_index/", FAILING_DIR))}
    # the two files shard 2's job wrote anew, and the derived tables: the
    # shard's other files are partitions as the merge writes them, linked
    # into the catalogue on the first night and kept
    assert rewritten == {
        "images/part-0002.parquet",
        "scenes/part-0002.parquet",
        "duplicates/part-0000.parquet",
        PAIRS_FILE,
        INPUTS_FILE,
    }
    assert run["images_changed"] == 1
    changes = read_catalogue_table(results / "catalogue", "changes")
    now = changes.filter(pc.equal(changes["run_id"], run["run_id"]))
    changed = now.filter(pc.equal(now["change"], "changed"))
    assert changed["image_id"].to_pylist() == [iid]
    # the rest are the synthetic repository's failures, failing again
    assert set(now["change"].to_pylist()) <= {"changed", "still_failing"}


def test_changed_states_rewrite_tables_equal_to_a_rerun(synthetic, tmp_path):
    """Two catalogues with the same history are byte-identical, partition
    by partition, whatever order the runs were merged in."""
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
        merge(scale, states, results, 1)  # an earlier run id: its own file
        built.append(files(results / "catalogue"))
    assert built[0].keys() == built[1].keys()
    for name, path in built[0].items():
        if not name.startswith(("runs/", "_merge/inputs")):
            assert path.read_bytes() == built[1][name].read_bytes(), name
    catalogue = Path(os.path.dirname(built[0]["images/part-0000.parquet"])).parent
    changes = pq.read_table(catalogue / "changes")  # any reader: one table
    keys = [("run_id", "ascending"), ("root", "ascending"), ("path", "ascending")]
    assert changes.equals(changes.sort_by(keys))
    assert set(changes["run_id"].to_pylist()) == {
        "20261202T000000Z",
        "20261203T000000Z",
    } | ({"20261201T000000Z"} & set(changes["run_id"].to_pylist()))
    runs = pq.read_table(catalogue / "runs")
    assert runs["run_id"].to_pylist() == [
        "20261201T000000Z",
        "20261202T000000Z",
        "20261203T000000Z",
    ]


def test_a_catalogue_without_its_inputs_file_is_merged_in_full(synthetic, tmp_path):
    scale, base = synthetic
    states = states_copy(base / "quiet", tmp_path / "state")
    results = tmp_path / "results"
    merge(scale, states, results, 1)
    (results / "catalogue" / INPUTS_FILE).unlink()
    first = files(results / "catalogue")
    merge(scale, states, results, 2)
    second = files(results / "catalogue")
    for name in SHARD_TABLES:
        for k in range(SHARDS):
            old = first[f"{name}/part-{k:04d}.parquet"]
            new = second[f"{name}/part-{k:04d}.parquet"]
            # taken from the shard's file (the catalogue's is not trusted
            # without its inputs), which the shard wrote as a partition
            assert inode(new) == inode(states[k] / f"{name}.parquet"), name
            assert old.read_bytes() == new.read_bytes(), name


def test_another_shard_count_repartitions_with_the_same_rows(synthetic, tmp_path):
    """The shard count changed (the repository grew): every partition is
    written in the new layout, holding the rows a merge from scratch does."""
    scale, base = synthetic
    states = states_copy(base / "quiet", tmp_path / "state")
    results = tmp_path / "results"
    merge(scale, states, results, 1)
    two = states_copy(base / "two", tmp_path / "two")
    run = merge(scale, two, results, 2)
    assert run["images_changed"] > 0
    found = files(results / "catalogue")
    assert {n for n in found if n.startswith("images/")} == {
        "images/part-0000.parquet",
        "images/part-0001.parquet",
    }
    fresh = tmp_path / "fresh"
    merge(scale, states_copy(base / "quiet", tmp_path / "state2"), fresh, 1)
    merge(scale, two, fresh, 2)
    got, want = contents(results / "catalogue"), contents(fresh / "catalogue")
    for name in TABLES:
        assert got[name].equals(want[name]), name


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
    assert tables.is_partition(paths[0], "files")
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


# ------------------------------------------ the code before partitions

OLD_MERGE = """
import sys
from pathlib import Path
from biocodes.repository.catalogue import merge_run
states, out, manifest = sys.argv[1:4]
dirs = sorted(Path(states).iterdir(), key=lambda p: int(p.name))
merge_run(dirs, out, {}, manifest)
"""


@pytest.fixture(scope="module")
def before_partitions(tmp_path_factory):
    """The library as it was before partitions (``git archive`` of
    :data:`BEFORE_PARTITIONS`), to run its merge in a child process."""
    where = tmp_path_factory.mktemp("before")
    try:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", BEFORE_PARTITIONS, "src"],
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip(f"commit {BEFORE_PARTITIONS} is not in this clone")
    subprocess.run(["tar", "-x", "-C", str(where)], input=archive, check=True)
    return where / "src"


def old_merge(src: Path, scale, states: Path, results: Path, run: int) -> None:
    scale.synthetic_manifest(results / "m.parquet", run)
    subprocess.run(
        [
            sys.executable,
            "-c",
            OLD_MERGE,
            str(states),
            str(results / "catalogue"),
            str(results / "m.parquet"),
        ],
        check=True,
        env={**os.environ, "PYTHONPATH": str(src)},
    )


def test_the_catalogue_holds_the_rows_of_the_code_before_partitions(
    synthetic, before_partitions, tmp_path
):
    """Same states, same runs: the old code's single files and the new
    partitions hold the same rows, table by table (runs: every figure)."""
    scale, base = synthetic
    old, new = tmp_path / "old", tmp_path / "new"
    quiet = states_copy(base / "quiet", tmp_path / "quiet")[0].parent
    changed = states_copy(base / "changed", tmp_path / "changed")[0].parent
    for run, states in ((1, quiet), (2, quiet), (3, changed)):  # 2: all linked
        old_merge(before_partitions, scale, states, old, run)
        merge(scale, sorted(states.iterdir(), key=lambda p: int(p.name)), new, run)
    assert (old / "catalogue" / "images.parquet").is_file()
    assert (new / "catalogue" / "images").is_dir()
    got, want = contents(new / "catalogue"), contents(old / "catalogue")
    for name in TABLES:
        assert got[name].equals(want[name]), name


def test_a_catalogue_from_before_partitions_is_migrated(
    synthetic, before_partitions, tmp_path
):
    """Its next merge writes partitions and one file per run, with the rows
    (and the bytes) of a catalogue that always had them."""
    scale, base = synthetic
    old, new = tmp_path / "old", tmp_path / "new"
    old_merge(before_partitions, scale, base / "quiet", old, 1)
    old_merge(before_partitions, scale, base / "quiet", old, 2)
    merge(scale, states_copy(base / "quiet", tmp_path / "s"), new, 1)
    merge(scale, states_copy(base / "quiet", tmp_path / "t"), new, 2)
    for results in (old, new):
        merge(scale, states_copy(base / "changed", results / "states"), results, 3)
    got, want = files(old / "catalogue"), files(new / "catalogue")
    assert got.keys() == want.keys()
    assert not any(n.endswith(".parquet") and "/" not in n for n in got)
    for name, path in want.items():
        if not name.startswith(("runs/", "_merge/")):
            assert got[name].read_bytes() == path.read_bytes(), name
    a, b = contents(old / "catalogue"), contents(new / "catalogue")
    for name in TABLES:
        assert a[name].equals(b[name]), name


def test_a_linked_partition_says_its_failures_from_their_rows_alone(
    synthetic, tmp_path
):
    """A quiet night's still-failing images come from the failed images'
    rows kept beside the partition (not from reading it), dated from the
    night they first failed, and are those a full comparison finds."""
    scale, base = synthetic
    states = states_copy(base / "quiet", tmp_path / "state")
    results = tmp_path / "results"
    merge(scale, states, results, 1)
    failed = read_catalogue_table(results / "catalogue", "images")
    failed = failed.filter(pc.equal(failed["status"], "error"))
    failed = sorted(failed["image_id"].to_pylist())
    assert failed

    def night(run: int) -> pa.Table:
        row = merge(scale, states, results, run)
        changes = read_catalogue_table(results / "catalogue", "changes")
        return changes.filter(pc.equal(changes["run_id"], row["run_id"])).sort_by(
            "image_id"
        )

    second = night(2)
    assert second["image_id"].to_pylist() == failed
    assert set(second["change"].to_pylist()) == {"still_failing"}
    assert set(second["failing_since"].to_pylist()) == {"20261201T000000Z"}
    # the same rows when the kept rows are gone and partitions are compared
    third = night(3)
    shutil.rmtree(Path(os.path.realpath(results / "catalogue")) / FAILING_DIR)
    fourth = night(4)
    for a, b in ((second, third), (third, fourth)):
        assert a.drop_columns(["run_id"]).equals(b.drop_columns(["run_id"]))


def _as_shard_jobs(
    states: list[Path], now: Path, run_id: str | None, gone: str | None = None
) -> None:
    """Write the tables of ``now``'s shards into ``states`` as shard jobs do
    (:func:`~biocodes.repository.shard.write_state`): with ``run_id``, each
    also finds its partition's changes against its last tables; ``gone``:
    an image left out (removed from the repository)."""
    from biocodes.repository.shard import write_state

    for state in states:
        before = {n: read_table(state / f"{n}.parquet", n) for n in SHARD_TABLES}
        tables = {}
        for n in SHARD_TABLES:
            table = read_table(now / state.name / f"{n}.parquet", n)
            tables[n] = table.filter(pc.field("image_id") != gone) if gone else table
        write_state(state, tables, SHARDS, None if run_id is None else (before, run_id))


def test_shard_jobs_find_their_partitions_changes(synthetic, tmp_path, monkeypatch):
    """A shard job compares its new tables with its last ones (the files the
    catalogue linked); the merge takes those changes instead of reading
    both versions of the partition, and the catalogue is the one it makes
    by comparing them itself. Where the catalogue's partition is not the
    job's last files (rewritten to carry a removed image), the merge
    compares."""
    from biocodes.repository import catalogue

    scale, base = synthetic
    by_job, by_merge = tmp_path / "job", tmp_path / "merge"
    states = {}
    for results in (by_job, by_merge):
        states[results] = states_copy(base / "quiet", results / "states")
        merge(scale, states[results], results, 1)
    gone = read_table(base / "quiet" / "0" / "images.parquet", "images")
    gone = gone["image_id"][3].as_py()
    compared: list[int] = []
    real = catalogue._compared

    def counted(previous, state, k):
        compared.append(k)
        return real(previous, state, k)

    monkeypatch.setattr(catalogue, "_compared", counted)
    # night 2: 5% changed (every partition), one image gone
    _as_shard_jobs(states[by_job], base / "changed", "20261202T000000Z", gone)
    merge(scale, states[by_job], by_job, 2)
    assert compared == []  # every partition's changes came from its job
    _as_shard_jobs(states[by_merge], base / "changed", None, gone)
    merge(scale, states[by_merge], by_merge, 2)
    assert sorted(compared) == list(range(SHARDS))
    assert contents(by_job / "catalogue") == contents(by_merge / "catalogue")
    changes = read_catalogue_table(by_job / "catalogue", "changes")
    kinds = set(
        changes.filter(pc.equal(changes["run_id"], "20261202T000000Z"))[
            "change"
        ].to_pylist()
    )
    assert {"changed", "removed", "still_failing"} <= kinds
    # night 3: partition 0 was rewritten (it carries the removed image)
    compared.clear()
    _as_shard_jobs(states[by_job], base / "quiet", "20261203T000000Z")
    merge(scale, states[by_job], by_job, 3)
    assert compared == [0]
    _as_shard_jobs(states[by_merge], base / "quiet", None)
    merge(scale, states[by_merge], by_merge, 3)
    assert contents(by_job / "catalogue") == contents(by_merge / "catalogue")
