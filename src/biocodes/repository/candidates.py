"""The scenes that can be in a duplicate group, found on the code index.

A night's ``duplicates`` table is made by
:func:`biocodes.repository.duplicates.duplicate_table` from these scenes
only: those whose ISCC-SUM another live scene shares, and those whose
Data-Code or ISCC-MIXED is within the distance of another live scene's.
Every member of a group is one of them, so the groups are those of all live
scenes. They are found on the packed codes of the code index
(:mod:`biocodes.repository.codeindex`: no code decoded, no string read);
near pairs are searched for the codes the previous catalogue did not hold,
and last night's pairs are kept where both codes are still there. Then only
the candidates' rows are taken from the catalogue's partitions.

Memory: the index's words of one column at a time (32 bytes per scene for a
Data-Code), a 64-bit key and a few integers per code, and the candidates'
rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from biocodes.repository.codeindex import INDEX_DIR, is_current
from biocodes.repository.duplicates import (
    PAIRS_SCHEMA,
    _components,
    _pairs_within,
    code_words,
)

#: the near kinds, the column each compares, and its config key and default
NEAR = {
    "near_data": ("data_code", "data_distance", 24),
    "near_mixed": ("iscc_mixed", "mixed_distance", 8),
}
SCENE_COLUMNS = ["image_id", "path", "scene_index", "status"]
SCENE_COLUMNS += ["iscc_code", "data_code", "iscc_mixed"]
IMAGE_COLUMNS = ["image_id", "root", "format"]


@dataclass
class Codes:
    """One column's codes of one length, as the index packs them: row ``r``
    is the ``local[r]``-th code of that length in index part
    ``parts[part[r]]``."""

    words: np.ndarray
    bits: int
    parts: list[str]
    part: np.ndarray
    local: np.ndarray


def packed_codes(index: Path, column: str) -> list[Codes]:
    """The index's codes of ``column``, one :class:`Codes` per length, read
    from its memory-mapped parts (the words are copied, once)."""
    by_bits: dict[int, list[tuple[str, np.ndarray]]] = {}
    for npy in sorted((index / column).glob("*.npy")):
        part, bits = npy.stem.rsplit("-", 1)
        by_bits.setdefault(int(bits), []).append((part, np.load(npy, mmap_mode="r")))
    found = []
    for bits, parts in sorted(by_bits.items()):
        sizes = [len(w) for _p, w in parts]
        words = np.concatenate([np.asarray(w) for _p, w in parts]) if parts else None
        part = np.repeat(np.arange(len(parts), dtype=np.int32), sizes)
        local = np.arange(sum(sizes)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        found.append(Codes(words, bits, [p for p, _w in parts], part, local))
    return found


def keys(words: np.ndarray, bits: int) -> np.ndarray:
    """A 64-bit key per code (its words mixed): equal codes, equal keys."""
    key = np.full(len(words), np.uint64(bits), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for w in range(words.shape[1]):
            key = (key ^ words[:, w]) * np.uint64(0x9E3779B97F4A7C15)
            key ^= key >> np.uint64(29)
    return key


def unique(words: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """(first row of each distinct code, each row's distinct number):
    rows sorted by key, a new number where the key or the words change; a
    run of equal keys holding other words (a key collision) is sorted by
    its words, so equal codes always share a number."""
    n = len(words)
    if not n:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    key = keys(words, bits)
    order = np.argsort(key, kind="stable")
    key = key[order]
    same_key = key[1:] == key[:-1]
    del key
    same = _same_neighbours(words, order, same_key)
    clash = np.flatnonzero(same_key & ~same)
    if len(clash):  # a run of one key with other codes in it: sort it by words
        runs = np.flatnonzero(np.r_[True, ~same_key])
        for start in np.unique(runs[np.searchsorted(runs, clash, "right") - 1]):
            end = runs[np.searchsorted(runs, start, "right")] if start < runs[-1] else n
            rows = order[start:end]
            sub = np.lexsort(words[rows].T[::-1])
            order[start:end] = rows[sub]
        same = _same_neighbours(words, order, same_key)
    start = np.r_[True, ~same]
    number = np.empty(n, np.int64)
    number[order] = np.cumsum(start) - 1
    return order[start], number


def _same_neighbours(
    words: np.ndarray, order: np.ndarray, same_key: np.ndarray
) -> np.ndarray:
    """Whether each code in ``order`` holds the words of the next one,
    compared only where their keys are equal (``same_key``)."""
    same = same_key.copy()
    at = np.flatnonzero(same_key)
    same[at] = (words[order[at]] == words[order[at + 1]]).all(axis=1)
    return same


def sorted_keys(words: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows in key order, their keys in that order) of codes' 64-bit keys."""
    key = keys(words, bits)
    order = np.argsort(key, kind="stable")
    return order, key[order]


def locate(
    words: np.ndarray,
    bits: int,
    among: np.ndarray | None,
    among_bits: int,
    among_keys: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Each of ``words``' row in ``among`` (a row of it holding that code),
    -1 where it is not there: keys looked up in ``among``'s sorted keys,
    then the words of the first row of that key compared (a key shared by
    other codes is resolved code by code). ``among`` may repeat codes;
    ``among_keys``: its :func:`sorted_keys`, if known."""
    at = np.full(len(words), -1, np.int64)
    if among is None or not len(among) or among_bits != bits or not len(words):
        return at
    order, ordered = among_keys or sorted_keys(among, bits)
    mine = keys(words, bits)
    lo = np.searchsorted(ordered, mine, "left")
    hi = np.searchsorted(ordered, mine, "right")
    has = np.flatnonzero(hi > lo)
    same = (among[order[lo[has]]] == words[has]).all(axis=1)
    at[has[same]] = order[lo[has[same]]]
    clash = has[~same]
    for k in clash[hi[clash] - lo[clash] > 1]:  # a key collision: rare
        rows = order[lo[k] : hi[k]]
        hit = rows[(among[rows] == words[k]).all(axis=1)]
        if len(hit):
            at[k] = hit[0]
    return at


def _known(
    pairs: pa.Table | None, kind: str, limit: int, bits: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """Last night's pairs of ``kind`` as words (a, b), if found with this
    limit and codes of this length."""
    if pairs is None:
        return None
    mine = pairs.filter(pc.equal(pairs["kind"], kind))
    if not len(mine):
        return None
    if mine["limit"][0].as_py() != limit:
        return None
    a, a_bits = code_words(mine["a"])
    b, _ = code_words(mine["b"])
    if a_bits != bits:
        return None
    return a, b


def near_pairs(
    codes: Codes,
    limit: int,
    before: list[Codes],
    known: tuple[np.ndarray, np.ndarray] | None,
    threads: int = 1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(first rows of the distinct codes, each row's distinct number, the
    pairs (i, j) of distinct numbers within ``limit`` bits).

    Only codes the previous catalogue (``before``: its index's codes of the
    same column) did not hold, and codes whose group lost a member, are
    compared with all; last night's pairs (``known``) hold where both codes
    are still here. The search runs on ``threads`` threads, and with more
    than one the previous codes' keys are sorted while the distinct codes
    are found."""
    old = next((c for c in before if c.bits == codes.bits), None)
    if known is None:  # all codes are searched: which are new does not matter
        old = None
    if old is not None and threads > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1) as pool:
            later = pool.submit(sorted_keys, old.words, old.bits)
            first, number = unique(codes.words, codes.bits)
            theirs = later.result()
    else:
        first, number = unique(codes.words, codes.bits)
        theirs = None if old is None else sorted_keys(old.words, old.bits)
    words = codes.words[first]
    if old is None:
        fresh = np.ones(len(words), bool)
        kept = (np.zeros(0, np.int64), np.zeros(0, np.int64))
    else:
        fresh = locate(words, codes.bits, old.words, codes.bits, theirs) < 0
        kept, lost = _kept_pairs(words, codes.bits, known)
        fresh |= lost
    query = None if fresh.all() else fresh  # a first night: all pairs
    i, j, _ = _pairs_within(words, codes.bits, limit, query=query, threads=threads)
    i = np.concatenate([i, kept[0]])
    j = np.concatenate([j, kept[1]])
    # a group searched again finds some of last night's pairs again
    both = np.unique(np.minimum(i, j) * len(words) + np.maximum(i, j))
    return first, number, np.stack([both // len(words), both % len(words)])


def _kept_pairs(
    words: np.ndarray, bits: int, known: tuple[np.ndarray, np.ndarray]
) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
    """Last night's pairs whose codes are both still here (as distinct
    numbers of ``words``), and which codes to search again: those of a
    group (by last night's pairs) that lost a code. A dense bucket keeps
    only the pairs that connect it, so such a group may hang together
    through pairs never kept."""
    both = np.concatenate(known)
    ends, end_number = unique(both, bits)
    end_words = both[ends]
    n = len(known[0])
    pa_, pb_ = end_number[:n], end_number[n:]
    at = locate(end_words, bits, words, bits)  # each end's number tonight
    here = at >= 0
    still = here[pa_] & here[pb_]
    kept = (at[pa_[still]], at[pb_[still]])
    lost = np.zeros(len(words), bool)
    gone = np.flatnonzero(~here)
    if len(gone):
        label = _components(len(end_words), pa_, pb_)
        touched = np.isin(label, label[gone]) & here
        lost[at[touched]] = True
    return kept, lost


def exact_rows(codes: Codes) -> np.ndarray:
    """Rows of codes another row shares (an exact group's candidates)."""
    _first, number = unique(codes.words, codes.bits)
    return np.bincount(number)[number] >= 2


def candidate_scenes(
    catalogue: Path,
    previous: Path | None,
    config: Mapping,
    known_pairs: pa.Table | None,
    threads: int = 1,
) -> tuple[pa.Table, pa.Table, dict[str, pa.Table]] | None:
    """(scenes, images, pairs per near kind): the live scenes that can be in
    a duplicate group (:data:`SCENE_COLUMNS`), their images' ``image_id``,
    ``root`` and ``format``, and every near pair, for
    :func:`~biocodes.repository.duplicates.duplicate_table`. None if the
    catalogue has no code index of this format."""
    index = catalogue / INDEX_DIR
    if not is_current(index):
        return None
    old_index = None if previous is None else previous / INDEX_DIR
    if old_index is not None and not is_current(old_index):
        old_index = None
    take: dict[str, dict[tuple[str, int], list[np.ndarray]]] = {}
    found: dict[str, list[tuple[Codes, np.ndarray, np.ndarray, np.ndarray]]] = {}

    def mark(column: str, codes: Codes, rows: np.ndarray) -> None:
        held, number = np.unique(codes.part[rows], return_inverse=True)
        order = np.argsort(number, kind="stable")
        bounds = np.searchsorted(number[order], np.arange(len(held) + 1))
        for p, part in enumerate(held):  # one pass, not one scan per part
            mine = rows[order[bounds[p] : bounds[p + 1]]]
            key = (codes.parts[part], codes.bits)
            take.setdefault(column, {}).setdefault(key, []).append(codes.local[mine])

    for codes in packed_codes(index, "iscc_code"):  # one column at a time
        mark("iscc_code", codes, np.flatnonzero(exact_rows(codes)))
    for kind, (column, setting, default) in NEAR.items():
        limit = int(config.get(setting, default))
        if limit < 0:  # no near search (duplicates.near: false)
            continue
        before = [] if old_index is None else packed_codes(old_index, column)
        for codes in packed_codes(index, column):
            known = _known(known_pairs, kind, limit, codes.bits)
            first, number, pairs = near_pairs(codes, limit, before, known, threads)
            paired = np.zeros(len(first), bool)
            paired[pairs.ravel()] = True
            rows = np.flatnonzero(paired[number])
            mark(column, codes, rows)
            found.setdefault(kind, []).append((codes, first, number, pairs))
        del before
    scenes, images = _rows_of(catalogue, take)
    return scenes, images, _pair_codes(scenes, found, config)


def _rows_of(
    catalogue: Path, take: dict[str, dict[tuple[str, int], list[np.ndarray]]]
) -> tuple[pa.Table, pa.Table]:
    """The candidates' rows, from each partition that holds one: its live
    scenes are the index part's rows in the same order (both sorted by
    image and scene; a column's index part holds its codes of one length)."""
    from biocodes.repository.tables import SCHEMAS

    parts = sorted({p for column in take.values() for p, _b in column})
    scene_parts = [SCHEMAS["scenes"].empty_table().select(SCENE_COLUMNS)]
    image_parts = [SCHEMAS["images"].empty_table().select(IMAGE_COLUMNS)]
    for part in parts:
        scenes = pq.read_table(
            catalogue / "scenes" / f"{part}.parquet", columns=SCENE_COLUMNS
        )
        ok = pc.and_(pc.equal(scenes["status"], "ok"), pc.is_valid(scenes["iscc_code"]))
        live = scenes.filter(pc.fill_null(ok, False))
        del scenes
        chosen = np.zeros(live.num_rows, bool)
        for column, wanted in take.items():
            lengths = pc.utf8_length(live[column]).to_numpy(zero_copy_only=False)
            valid = live[column].is_valid().to_numpy(zero_copy_only=False)
            for (p, bits), rows in wanted.items():
                if p == part:
                    length = _text_length(live[column], valid, lengths, bits)
                    at = np.flatnonzero(valid & (lengths == length))
                    chosen[at[np.concatenate(rows)]] = True
        scene_parts.append(live.filter(pa.array(chosen)))
        ids = pc.unique(scene_parts[-1]["image_id"])
        image_parts.append(
            pq.read_table(
                catalogue / "images" / f"{part}.parquet",
                columns=IMAGE_COLUMNS,
                filters=pc.field("image_id").isin(ids),
            )
        )
    return pa.concat_tables(scene_parts), pa.concat_tables(image_parts)


def _text_length(
    column: pa.ChunkedArray, valid: np.ndarray, lengths: np.ndarray, bits: int
) -> int:
    """The text length of the column's codes of ``bits`` bits."""
    from biocodes.repository.duplicates import code_bits

    for length in np.unique(lengths[valid]):
        row = int(np.flatnonzero(valid & (lengths == length))[0])
        if code_bits(column[row].as_py())[1] == bits:
            return int(length)
    raise ValueError(f"no code of {bits} bits in the partition: index out of date")


def _pair_codes(
    scenes: pa.Table,
    found: dict[str, list[tuple[Codes, np.ndarray, np.ndarray, np.ndarray]]],
    config: Mapping,
) -> dict[str, pa.Table]:
    """Each near kind's pairs as code strings (:data:`PAIRS_SCHEMA`): the
    candidates' codes, decoded, matched to the distinct codes' words."""
    out = {}
    for kind, (column, setting, default) in NEAR.items():
        limit = int(config.get(setting, default))
        texts = pc.unique(scenes[column].drop_null())
        tables = [PAIRS_SCHEMA.empty_table()]
        for codes, first, _number, pairs in found.get(kind, []):
            if not pairs.shape[1]:
                continue
            mine, words = _words_of(texts, codes.bits)
            needed = np.unique(pairs.ravel())
            at = locate(codes.words[first[needed]], codes.bits, words, codes.bits)
            if (at < 0).any():
                raise ValueError("a near pair's code is not among the candidates")
            text = mine.take(pa.array(at))
            where = np.searchsorted(needed, pairs)
            tables.append(
                pa.table(
                    {
                        "kind": pa.array([kind] * pairs.shape[1], pa.string()),
                        "a": text.take(pa.array(where[0])),
                        "b": text.take(pa.array(where[1])),
                        "limit": pa.array([limit] * pairs.shape[1], pa.int32()),
                    },
                    schema=PAIRS_SCHEMA,
                )
            )
        out[kind] = pa.concat_tables(tables)
    return out


def _words_of(texts: pa.Array, bits: int) -> tuple[pa.Array, np.ndarray]:
    """The codes of ``bits`` bits among ``texts``, and their words."""
    lengths = pc.utf8_length(texts).to_numpy(zero_copy_only=False)
    for length in np.unique(lengths):
        part = texts.filter(pa.array(lengths == length))
        words, found = code_words(part)
        if found == bits:
            return part, words
    raise ValueError(f"no code of {bits} bits among the candidates")
