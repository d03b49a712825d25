"""Duplicates found on the code index (repository/candidates.py): night
after night, with only the new codes searched, the ``duplicates`` table
equals a merge from scratch of the same shard states, through the cases
that make an incremental search wrong: a group held together by a code that
goes away, a dense bucket of near-identical codes losing a member, a new
code joining an old group, and codes changing shard."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from catalogues import scale_benchmark

from biocodes.repository import duplicates
from biocodes.repository.catalogue import PAIRS_FILE, merge_run
from biocodes.repository.tables import (
    SORT_KEYS,
    read_catalogue_table,
    read_table,
    sorted_batches,
    write_atomic,
)

SHARDS = 3


def _flip(body: bytes, bits: list[int]) -> bytes:
    raw = bytearray(body)
    for b in bits:
        raw[b // 8] ^= 1 << (b % 8)
    return bytes(raw)


def _set_codes(states: list[Path], codes: dict[int, bytes]) -> None:
    """Give live scene number k (in image order over all shards) the
    Data-Code body ``codes[k]``; each shard's scenes file is written anew,
    as its job would."""
    head = None
    k = 0
    for state in states:
        scenes = read_table(state / "scenes.parquet", "scenes")
        data = scenes["data_code"].to_pylist()
        status = scenes["status"].to_pylist()
        if head is None:
            text = next(c for c in data if c)[5:]
            head = base64.b32decode(text + "=" * (-len(text) % 8))[:2]
        for r in range(len(data)):
            if status[r] != "ok":
                continue
            if k in codes:
                data[r] = "ISCC:" + base64.b32encode(head + codes[k]).decode().rstrip(
                    "="
                )
            k += 1
        scenes = scenes.set_column(
            scenes.schema.get_field_index("data_code"),
            "data_code",
            pa.array(data, pa.string()),
        )
        (state / "scenes.parquet").unlink()
        write_atomic(sorted_batches("scenes", scenes), state / "scenes.parquet")


def _scene_of(states: list[Path], code: str) -> int:
    """The live scene number (as :func:`_set_codes` counts) holding ``code``."""
    k = 0
    for state in states:
        scenes = read_table(state / "scenes.parquet", "scenes")
        for c, st in zip(scenes["data_code"].to_pylist(), scenes["status"].to_pylist()):
            if st != "ok":
                continue
            if c == code:
                return k
            k += 1
    raise AssertionError(code)


def _text(states: list[Path], number: int) -> str:
    """The Data-Code of live scene ``number`` (as :func:`_set_codes` counts)."""
    codes = []
    for state in states:
        scenes = read_table(state / "scenes.parquet", "scenes")
        ok = scenes.filter(pc.equal(scenes["status"], "ok"))
        codes += ok["data_code"].to_pylist()
    return codes[number]


def _merge(
    scale, states: list[Path], results: Path, run: int, config: dict | None = None
) -> pa.Table:
    results.mkdir(exist_ok=True)
    scale.synthetic_manifest(results / "m.parquet", run)
    merge_run(states, results / "catalogue", config or {}, results / "m.parquet")
    table = read_catalogue_table(results / "catalogue", "duplicates")
    keys = [*SORT_KEYS["duplicates"], "code", "distance"]
    return table.sort_by([(c, "ascending") for c in keys])


def test_nightly_duplicates_equal_a_merge_from_scratch(tmp_path, monkeypatch):
    scale = scale_benchmark()
    scale.synthetic_states(tmp_path / "base", 900, SHARDS)
    states = sorted((tmp_path / "base").iterdir(), key=lambda p: int(p.name))
    rng = np.random.default_rng(7)

    def body() -> bytes:
        return rng.integers(0, 256, 32, dtype=np.uint8).tobytes()

    def flips(n: int) -> list[int]:
        return rng.choice(256, n, replace=False).tolist()

    a, x, dense = body(), body(), body()
    far = flips(30)
    night1 = {
        0: a,
        1: _flip(a, flips(5)),
        2: _flip(a, flips(9)),
        # x and y are 30 bits apart: only the bridge (15 from each) joins them
        10: x,
        11: _flip(x, far),
        12: _flip(x, far[:15]),
    }
    # a dense bucket: 400 near-identical codes (all within 4 bits)
    night1.update({100 + k: _flip(dense, flips(2)) for k in range(400)})
    _set_codes(states, night1)
    searched: list[int] = []
    real = duplicates._pairs_within

    def counting(words, bits, limit, query=None, stats=None):
        searched.append(len(words) if query is None else int(np.sum(query)))
        return real(words, bits, limit, query=query, stats=stats)

    monkeypatch.setattr(
        "biocodes.repository.candidates._pairs_within", counting, raising=True
    )
    first = _merge(scale, states, tmp_path / "nightly", 1)
    groups = first.filter(pc.equal(first["kind"], "near_data"))
    assert len(pc.unique(groups["group_id"])) >= 3
    # x and y are grouped through the bridge
    assert {_text(states, 10), _text(states, 11)} <= set(groups["code"].to_pylist())

    # night 2: the bridge goes, the dense bucket's leaders go (the codes its
    # kept pairs hang on), a new code joins a, an unrelated code arrives
    pairs = pq.read_table(tmp_path / "nightly" / "catalogue" / PAIRS_FILE)
    ends = pc.value_counts(
        pa.concat_arrays([pairs["a"].combine_chunks(), pairs["b"].combine_chunks()])
    )
    # a star was kept: each band's bucket was searched by a leader, not pair
    # by pair; its leaders go
    leaders = [e["values"] for e in ends.to_pylist() if e["counts"] > 50]
    assert leaders and pairs.num_rows < 400 * 399 // 4
    night2 = {12: body(), **{_scene_of(states, c): body() for c in leaders}}
    night2.update({20: _flip(a, flips(7)), 21: body()})
    _set_codes(states, night2)
    searched.clear()
    second = _merge(scale, states, tmp_path / "nightly", 2)
    scratch = _merge(scale, states, tmp_path / "scratch2", 2)
    assert second.equals(scratch)
    # only the night's codes (and the bridge's and bucket's old groups) were
    # searched, not every code
    total = len(
        pc.unique(
            read_catalogue_table(tmp_path / "scratch2" / "catalogue", "scenes")[
                "data_code"
            ]
        )
    )
    assert 0 < searched[0] < total / 2, (searched, total)
    # the bridge went: x and y (30 bits apart) are in no group now
    codes = set(second["code"].to_pylist())
    assert not {_text(states, 10), _text(states, 11)} & codes

    # night 3: a shard's files are rewritten with the same rows (new inodes)
    for state in states[:1]:
        table = read_table(state / "scenes.parquet", "scenes")
        shutil.copy(state / "scenes.parquet", tmp_path / "keep.parquet")
        (state / "scenes.parquet").unlink()
        write_atomic(sorted_batches("scenes", table), state / "scenes.parquet")
    third = _merge(scale, states, tmp_path / "nightly", 3)
    assert third.equals(second)


def test_distinct_codes_are_exact_when_keys_collide(monkeypatch):
    """Codes are told apart by their words, not only by their 64-bit keys:
    with every key made equal, the distinct codes and lookups are still
    those of the words."""
    from biocodes.repository import candidates

    rng = np.random.default_rng(3)
    base = rng.integers(0, 2**63, (40, 4), dtype=np.int64).view(np.uint64)
    words = base[rng.integers(0, 40, 500)]
    want_first, _ = candidates.unique(words, 256)
    monkeypatch.setattr(candidates, "keys", lambda w, bits: np.zeros(len(w), np.uint64))
    first, number = candidates.unique(words, 256)
    assert len(first) == len(want_first) == len(np.unique(words, axis=0))
    # the same partition of the rows into codes
    assert (words[first][number] == words).all()
    assert len(np.unique(number)) == len(first)
    at = candidates.locate(base, 256, words[first], 256)
    assert (words[first][at] == base).all()
    # among codes that repeat (a previous index's rows), too
    at = candidates.locate(base, 256, words, 256)
    assert (words[at] == base).all()
    other = rng.integers(0, 2**63, (5, 4), dtype=np.int64).view(np.uint64)
    assert (candidates.locate(other, 256, words[first], 256) == -1).all()


def test_near_search_can_be_switched_off(tmp_path):
    """``duplicates.near: false`` keeps the exact groups only (no near
    search: hours at tens of millions of scenes); switched on again, the
    next night searches every code and equals a merge from scratch."""
    scale = scale_benchmark()
    scale.synthetic_states(tmp_path / "base", 900, SHARDS)
    states = sorted((tmp_path / "base").iterdir(), key=lambda p: int(p.name))
    off = {"duplicates": {"near": False}}
    first = _merge(scale, states, tmp_path / "nightly", 1, off)
    assert set(first["kind"].to_pylist()) == {"exact"}
    pairs = pq.read_table(tmp_path / "nightly" / "catalogue" / PAIRS_FILE)
    assert pairs.num_rows == 0
    second = _merge(scale, states, tmp_path / "nightly", 2)
    assert {"exact", "near_data", "near_mixed"} <= set(second["kind"].to_pylist())
    assert second.equals(_merge(scale, states, tmp_path / "scratch", 2))
    assert first.equals(second.filter(pc.equal(second["kind"], "exact")))
