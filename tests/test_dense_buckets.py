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


def spread_codes(rng, n, bits, shared, share=1.0, near=0, flips=3, pair=False):
    """``n`` random codes of ``bits`` bits whose first ``shared`` bits are
    one pattern in a ``share`` of them (a band's bits far from uniform:
    ISCC-MIXED's first 9 bits are constant), or (``pair``) the pattern in
    half of those and its complement in the other half (each bit uniform,
    the band not), with ``near`` copies of random ones a few bits off
    (groups to find)."""
    k = bits // 64
    words = rng.integers(0, 2**64, (n, k), dtype=np.uint64, endpoint=False)
    keep = np.uint64((1 << (64 - shared)) - 1)  # shared <= 64: in word 0
    pattern = rng.integers(0, 2**64, dtype=np.uint64) & ~keep
    which = rng.random(n)
    sharing = which < share
    words[sharing, 0] = (words[sharing, 0] & keep) | pattern
    if pair:
        other = which < share / 2
        words[other, 0] ^= ~keep
    copies = words[rng.integers(0, n, near)].copy()
    for row in copies:
        for _ in range(int(rng.integers(1, flips + 1))):
            row[rng.integers(k)] ^= np.uint64(1 << int(rng.integers(64)))
    out = np.concatenate([words, copies])
    return out[rng.permutation(len(out))]


def search_and_check(words, bits, limit):
    """The full search's candidates, its groups checked against brute force
    (and every pair returned within the limit)."""
    n = len(words)
    stats = {}
    i, j, d = _pairs_within(words, bits, limit, stats=stats)
    assert (d <= limit).all() and (i < j).all()
    assert same_partition(_components(n, i, j), brute_labels(words, limit))
    assert len(i) >= 250  # the planted near copies
    return i, j, stats["candidates"]


@pytest.mark.parametrize("bits,limit", [(64, 8), (256, 24)])
def test_bits_all_codes_share_are_left_out_of_the_bands(bits, limit):
    """Codes whose first bits are the same in all (ISCC-MIXED's first 9 at
    20k small images): the band holding them had few keys, each a bucket of
    thousands of spread codes compared pair by pair, once per mask (74 s of
    a 77 s merge). The search drops those bits (old code: 31M and 5.2M
    candidates here)."""
    rng = np.random.default_rng(bits + 1)
    words = spread_codes(rng, 3000, bits, shared=9, near=300, flips=limit // 3)
    n = len(words)
    _, _, candidates = search_and_check(words, bits, limit)
    assert candidates < n * n / 12, candidates


@pytest.mark.parametrize("bits,limit", [(64, 8), (256, 24)])
def test_bits_far_from_uniform_are_dealt_among_the_bands(bits, limit):
    """Most codes share their first 20 bits, random elsewhere: those bits
    vary (nothing to leave out) but say little, so a band made of them has
    one bucket of most codes. They are dealt out among the bands instead
    (old code: 15.8M and 14.8M candidates here)."""
    rng = np.random.default_rng(bits + 2)
    words = spread_codes(rng, 3000, bits, 20, share=0.7, near=300, flips=limit // 3)
    n = len(words)
    i, j, candidates = search_and_check(words, bits, limit)
    assert candidates < n * n / 8, candidates

    # a night's new codes against the rest: the same groups
    query = rng.random(n) < 0.1
    qi, qj, _ = _pairs_within(words, bits, limit, query=query)
    old = ~query[i] & ~query[j]
    labels = _components(n, np.r_[qi, i[old]], np.r_[qj, j[old]])
    assert same_partition(labels, brute_labels(words, limit))


@pytest.mark.parametrize("bits,limit,most", [(64, 8, 0.8), (256, 24, 0.2)])
def test_a_dense_bucket_of_spread_codes_is_searched_on_its_other_bits(
    bits, limit, most
):
    """A pattern in 45% of the codes and its complement in 45%: every bit is
    uniform, but a band of them has two keys, each a bucket of ~1,400
    codes spread out, not clustered. Such a bucket is searched again on the
    bits its codes do not share, not pair by pair (old code: 6.5M and 6.4M
    candidates here, more than all n * n / 2 pairs)."""
    rng = np.random.default_rng(bits)
    words = spread_codes(
        rng, 3000, bits, 24, share=0.9, near=300, flips=limit // 3, pair=True
    )
    n = len(words)
    _, _, candidates = search_and_check(words, bits, limit)
    assert candidates < most * n * n / 2, candidates
