"""Near duplicates among many identical and near-identical codes (constant
or all-black images) stay linear: the candidate pairs compared are counted,
never timed, and the groups equal those of a brute-force search (issue 27:
the first merge at 20k images took 125 s in such buckets)."""

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from biocodes.repository.duplicates import _components, _pairs_within, duplicate_table


def dense_codes(rng, n_same, n_near, n_random, words=4, flips=4, clusters=1):
    """``clusters`` base codes, each with identical copies and copies a few
    bits off, and random codes between them."""
    rows = []
    for _ in range(clusters):
        base = rng.integers(0, 2**63, words, dtype=np.uint64, endpoint=True)
        rows += [base.copy() for _ in range(n_same)]
        for _ in range(n_near):
            row = base.copy()
            for _ in range(int(rng.integers(1, flips + 1))):
                row[rng.integers(words)] ^= np.uint64(1 << int(rng.integers(64)))
            rows.append(row)
    rows += list(rng.integers(0, 2**63, (n_random, words), dtype=np.uint64))
    out = np.array(rows, dtype=np.uint64)
    return out[rng.permutation(len(out))]


def brute_labels(words, max_distance):
    n = len(words)
    i_all, j_all = [], []
    for start in range(0, n, 256):
        block = words[start : start + 256]
        d = np.bitwise_count(block[:, None, :] ^ words[None, :, :]).sum(axis=2)
        i, j = np.nonzero(d <= max_distance)
        i = i + start
        keep = i < j
        i_all.append(i[keep])
        j_all.append(j[keep])
    return _components(n, np.concatenate(i_all), np.concatenate(j_all))


def same_partition(a, b):
    """Two labellings group the same rows together."""
    pairs = np.unique(np.stack([a, b]), axis=1)
    return len(np.unique(pairs[0])) == len(np.unique(pairs[1])) == pairs.shape[1]


@pytest.mark.parametrize("bits,limit", [(256, 24), (64, 8)])
def test_many_near_identical_codes_stay_linear_and_exact(bits, limit):
    rng = np.random.default_rng(bits)
    words = dense_codes(rng, 1200, 1200, 400, words=bits // 64, flips=limit // 4)
    words = np.concatenate(
        [words, dense_codes(rng, 300, 300, 0, words=bits // 64, clusters=3)]
    )
    n = len(words)
    stats = {}
    i, j, d = _pairs_within(words, bits, limit, stats=stats)
    assert (d <= limit).all() and (i < j).all()
    assert same_partition(_components(n, i, j), brute_labels(words, limit))
    # every pair of a cluster would be ~n*n/2 per band: the search compares
    # a few codes per code and band instead
    assert stats["candidates"] < 40 * n, stats
    assert stats["candidates"] < n * n / 50

    # a night's new codes (a tenth of them) against the rest: bounded too
    query = rng.random(n) < 0.1
    stats = {}
    qi, qj, _ = _pairs_within(words, bits, limit, query=query, stats=stats)
    assert stats["candidates"] < 40 * n, stats
    # with the pairs among the rest, the groups are the full search's
    old = ~query[i] & ~query[j]
    labels = _components(n, np.r_[qi, i[old]], np.r_[qj, j[old]])
    assert same_partition(labels, brute_labels(words, limit))


def code_table(words_rows):
    import iscc_core as ic

    head = ic.encode_header(ic.MT.DATA, 0, 0, ic.encode_length(ic.MT.DATA, 256))
    return [
        "ISCC:" + ic.encode_base32(head + row.astype(">u8").tobytes())
        for row in words_rows
    ]


def tables(rows):
    scenes = pa.table(
        {
            "image_id": [r[0] for r in rows],
            "path": [r[0] + ".tif" for r in rows],
            "scene_index": pa.array([0] * len(rows), pa.int32()),
            "iscc_code": [r[1] for r in rows],
            "data_code": [r[1] for r in rows],
            "iscc_mixed": pa.array([None] * len(rows), pa.string()),
            "status": ["ok"] * len(rows),
        }
    )
    images = pa.table(
        {
            "image_id": [r[0] for r in rows],
            "root": ["r"] * len(rows),
            "format": ["tiff"] * len(rows),
        }
    )
    return scenes, images


def test_a_night_of_new_codes_only_equals_the_full_search_in_dense_groups():
    """Last night's pairs of a dense group connect it but are not all its
    pairs: when a member goes (here: the codes the leaders were), the
    group is searched again, and the groups equal a full search's."""
    rng = np.random.default_rng(5)
    words = dense_codes(rng, 0, 700, 200, clusters=2, flips=10)
    rows = [(f"i{k:04d}", c) for k, c in enumerate(code_table(words))]
    _, pairs = duplicate_table(*tables(rows))
    searched = pa.array(sorted({r[1] for r in rows}))
    known = {
        "near_data": (searched, pairs.filter(pc.equal(pairs["kind"], "near_data")))
    }
    # the codes with the most pairs (the dense buckets' leaders) go; a few
    # unrelated codes come
    ends = pa.concat_arrays([p.combine_chunks() for p in (pairs["a"], pairs["b"])])
    degree = sorted(pc.value_counts(ends).to_pylist(), key=lambda v: -v["counts"])
    busiest = {v["values"] for v in degree[:30]}
    new = code_table(rng.integers(0, 2**63, (20, 4), dtype=np.uint64))
    now = [r for r in rows if r[1] not in busiest]
    now += [(f"n{k:04d}", c) for k, c in enumerate(new)]
    full, _ = duplicate_table(*tables(now))
    again, _ = duplicate_table(*tables(now), known=known)
    keys = [(k, "ascending") for k in ("kind", "image_id", "scene_index")]
    assert full.num_rows > 500
    # the same groups: group ids name the first member, which is the same
    assert full.sort_by(keys).equals(again.sort_by(keys))
