"""Exact and near duplicates among catalogue scenes, and "what is like this?".

Exact duplicates share the per-scene ISCC-SUM (identical pixels). Near
duplicates are within a Hamming distance on the Data-Code (similar bytes) or on
ISCC-MIXED (similar looks, with views on). Near pairs are found without
comparing all pairs: a code cut into ``d + 1`` bands has at least one band
identical with any code within ``d`` bits (pigeonhole), so only codes sharing a
band are compared.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from itertools import combinations
from math import comb

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def code_bits(code: str) -> tuple[int, int]:
    """(body as int, bit length) of an ISCC unit such as a Data-Code."""
    import iscc_core as ic

    _mt, _st, _vs, _ln, body = ic.iscc_decode(code)
    return int.from_bytes(body, "big"), len(body) * 8


def near_distances(settings: Mapping) -> dict[str, int]:
    """The ``duplicates`` settings' distances, in bits, of the near kinds:
    ``data_distance`` (Data-Code) and ``mixed_distance`` (ISCC-MIXED); -1
    (no near search) for both where ``near`` is false."""
    near = settings.get("near", True)
    return {
        "data_distance": int(settings.get("data_distance", 24)) if near else -1,
        "mixed_distance": int(settings.get("mixed_distance", 8)) if near else -1,
    }


def near_pairs(
    codes: Sequence[tuple[int, int]], max_distance: int
) -> list[tuple[int, int, int]]:
    """(i, j, distance), i < j, of codes within ``max_distance`` bits (codes
    of one length; distance 0 included): every such pair, except inside a
    band bucket of more than :data:`BUCKET` codes, where those that connect
    the same groups (see :func:`_dense_bucket`)."""
    if not codes or max_distance < 0:
        return []
    bits = codes[0][1]
    nbytes = (bits + 63) // 64 * 8
    body = np.frombuffer(
        b"".join(v.to_bytes(nbytes, "big") for v, _ in codes), dtype=">u8"
    )
    words = body.reshape(len(codes), -1).astype(np.uint64)
    i, j, d = _pairs_within(words, bits, max_distance)
    return sorted(zip(i.tolist(), j.tolist(), d.tolist()))


# ------------------------------------------------------------ vectorised
# The catalogue merge finds duplicates among all live scenes every night, so
# the search works on Arrow columns and numpy arrays, never row by row.

_B32 = np.full(256, 255, dtype=np.uint8)
_B32[np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", dtype=np.uint8)] = np.arange(
    32, dtype=np.uint8
)
#: candidate pairs checked per numpy batch (bounds memory: ~50 bytes each)
PAIR_BATCH = 1_000_000


def code_words(codes: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, int]:
    """ISCC unit bodies as big-endian uint64 words (``words[n, k]``, bits),
    base32-decoded for the whole column at once. All codes must be of one
    unit type and length; the header is checked against iscc-core."""
    if isinstance(codes, pa.ChunkedArray):
        codes = codes.combine_chunks()
    codes = codes.cast(pa.string())
    n = len(codes)
    if n == 0:
        return np.zeros((0, 1), dtype=np.uint64), 0
    lengths = pc.utf8_length(codes).to_numpy(zero_copy_only=False)
    if lengths.min() != lengths.max():
        raise ValueError("ISCC codes of different lengths in one column")
    length = int(lengths[0])
    offsets = np.frombuffer(codes.buffers()[1], dtype=np.int32)
    offsets = offsets[codes.offset : codes.offset + n + 1]
    data = np.frombuffer(codes.buffers()[2], dtype=np.uint8)
    text = data[offsets[0] : offsets[-1]].reshape(n, length)[:, 5:]  # "ISCC:"
    value, width = code_bits(codes[0].as_py())
    words = np.empty((n, -(-width // 64)), dtype=np.uint64)
    for start in range(0, n, DECODE_BATCH):  # bounded temporaries
        words[start : start + DECODE_BATCH] = _decode(
            text[start : start + DECODE_BATCH], width
        )
    if int.from_bytes(words[0].astype(">u8").tobytes(), "big") != value:
        raise ValueError("unexpected ISCC header length")
    return words, width


#: codes decoded per numpy batch (the temporaries take ~800 bytes a code)
DECODE_BATCH = 65_536


def _decode(text: np.ndarray, width: int) -> np.ndarray:
    """Base32 text (one row per code, header included) to the bodies'
    big-endian uint64 words, ``width`` bits each."""
    n = len(text)
    values = _B32[text]
    if (values == 255).any():
        raise ValueError("ISCC code that is not base32")
    # 8 base32 characters are 5 bytes: decode groups as 40-bit integers
    # (a few bytes per code at a time, never a bit per byte)
    groups = -(-values.shape[1] // 8)
    padded = np.zeros((n, groups * 8), dtype=np.uint64)
    padded[:, : values.shape[1]] = values
    del values
    shifts = np.arange(35, -1, -5, dtype=np.uint64)
    packed = (padded.reshape(n, groups, 8) << shifts).sum(axis=2, dtype=np.uint64)
    del padded
    as_bytes = packed[..., None] >> np.arange(32, -1, -8, dtype=np.uint64)
    raw = (as_bytes & np.uint64(255)).astype(np.uint8).reshape(n, groups * 5)
    del packed, as_bytes
    body = raw[:, 2 : 2 + width // 8]  # a 2-byte header: every unit we store
    pad = (-body.shape[1]) % 8
    if pad:
        body = np.concatenate([np.zeros((n, pad), np.uint8), body], axis=1)
    return np.ascontiguousarray(body).view(">u8").astype(np.uint64)


def _distance(words: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.bitwise_count(words[a] ^ words[b]).sum(axis=1, dtype=np.int64)


def _plan(
    n: int, bits: int, max_distance: int, pairs: float, lookup: float = 3.0
) -> tuple[int, int]:
    """Bands and per-band radius of the cheapest search (:func:`_plan_cost`)."""
    return _plan_cost(n, bits, max_distance, pairs, lookup)[1:]


def _plan_cost(
    n: int, bits: int, max_distance: int, pairs: float, lookup: float = 3.0
) -> tuple[float, int, int]:
    """Bands and per-band radius for a multi-index search: codes within ``d``
    bits agree up to ``d // bands`` bits in at least one band (pigeonhole).
    ``d + 1`` exact bands suit a few thousand codes; at a million, wider bands
    with a radius of 1 or 2 (each bit subset masked in turn) check far fewer
    candidates. The cost model counts key lookups over ``n`` codes (a sort:
    ``lookup`` candidate checks each) and the expected candidates among
    ``pairs`` random pairs. A search for a few queried codes among all is
    planned by :func:`_query_plan`. Returns (cost, bands, radius)."""
    best = None
    for bands in range(max(1, -(-bits // 62)), bits + 1):
        radius = max_distance // bands
        width = bits / bands
        if radius > width:
            continue
        masks = bands * comb(int(width), radius)
        cost = masks * n * lookup + masks * pairs * 2.0 ** -(width - radius)
        if best is None or cost < best[0]:
            best = (cost, bands, radius)
    assert best is not None
    return best


def _pairs_within(
    words: np.ndarray,
    bits: int,
    max_distance: int,
    query: np.ndarray | None = None,
    stats: dict[str, int] | None = None,
    threads: int = 1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i < j, distance) with Hamming distance <= max_distance: every such
    pair, except inside a band bucket of more than :data:`BUCKET` codes,
    where enough pairs to connect exactly what the pairs connect (see
    :func:`_dense_bucket`), so the groups are exact and the cost stays
    linear in a bucket of many near-identical codes; with ``query`` (a
    boolean mask), only pairs with a queried member, at a cost that follows
    the number queried (on ``threads`` threads). ``stats["candidates"]``
    counts the code pairs compared."""
    if stats is None:
        stats = {}
    stats.setdefault("candidates", 0)
    n = len(words)
    empty = np.zeros(0, dtype=np.int64)
    asked = None if query is None else np.flatnonzero(query)
    if n < 2 or max_distance < 0 or (asked is not None and not len(asked)):
        return empty, empty, empty
    if asked is not None:
        found = _query_search(words, bits, max_distance, asked, stats, threads)
    else:
        found = _full_search(words, bits, max_distance, stats) or []
    if not found:
        return empty, empty, empty
    pairs_found = np.unique(np.concatenate(found))
    i, j = pairs_found // n, pairs_found % n
    return i, j, _distance(words, i, j)


def _full_search(
    words: np.ndarray,
    bits: int,
    max_distance: int,
    stats: dict[str, int],
    budget: float | None = None,
) -> list[np.ndarray] | None:
    """Pairs (as i * n + j, i < j, repeats possible) within ``max_distance``
    among all codes: a multi-index search (:func:`_plan`) on the bits that
    are not the same in all codes (a constant bit would make its band's
    keys fewer and its buckets larger: ISCC-MIXED's first 9 bits are), far
    from uniform bits dealt out among the bands (:func:`_dealt`), each
    band's keys with each subset of ``radius`` bits masked in turn, and the
    codes of equal keys compared (:func:`_equal_key_pairs`). With
    ``budget`` (a number of candidate pairs), None instead when the search
    would compare that many or no bit is constant (see :func:`_spread`)."""
    n = len(words)
    columns = _varying_columns(words)
    width = len(columns)
    if budget is not None and width >= bits:
        return None
    if width <= max_distance and n > BUCKET:  # every pair is within the distance
        return [np.arange(1, n, dtype=np.int64)]  # (0, j): connected through 0
    bands, radius = _plan(n, width, max_distance, n * n / 2)
    columns = _dealt(words, columns, bands)
    if width < bits or (np.diff(columns) != 1).any():
        words = _gathered(words, columns)
    bits = width
    if radius and max_distance < bits:
        # each mask of a band repeats its buckets: codes whose bits are not
        # independent (a band with few keys) fill the same large bucket once
        # per mask; exact bands compare each such bucket once
        exact = max_distance + 1
        if _sampled_cost(words, bits, exact, 0) < _sampled_cost(
            words, bits, bands, radius
        ):
            bands, radius = exact, 0
    if budget is not None and _search_cost(words, bits, bands, radius) >= budget:
        return None
    found: list[np.ndarray] = []
    for keys in _masked_keys(words, bits, bands, radius):
        found.extend(_equal_key_pairs(keys, words, max_distance, stats, bits=bits))
    return found


def _masked_keys(
    words: np.ndarray, bits: int, bands: int, radius: int
) -> Iterator[np.ndarray]:
    """Each band's keys with each subset of ``radius`` of its bits masked in
    turn (codes within ``radius`` bits in a band share one of these)."""
    for width, keys in _bands(words, bits, bands):
        weights = 1 << np.arange(width - 1, -1, -1, dtype=np.int64)
        for masked in combinations(range(width), radius):
            yield keys & ~sum(int(weights[m]) for m in masked)


def _search_cost(
    words: np.ndarray,
    bits: int,
    bands: int,
    radius: int,
    lookup: float = 3.0,
    scale: float = 1.0,
) -> float:
    """What a search planned as ``bands`` and ``radius`` costs on these codes,
    in candidate pairs: the key lookups (as :func:`_plan` counts them) and
    every pair of equal keys (a bucket of more than :data:`BUCKET` counted
    as all its pairs, an upper bound), counted, not assumed uniform. With
    ``scale``, for codes ``scale`` times as many as these (a sample)."""
    n = len(words)
    cost = 0.0
    for keys in _masked_keys(words, bits, bands, radius):
        _, sizes = np.unique(keys, return_counts=True)
        pairs = float((sizes * (sizes - 1) // 2).sum())
        cost += n * lookup * scale + pairs * scale * scale
    return cost


def _sampled_cost(words: np.ndarray, bits: int, bands: int, radius: int) -> float:
    """:func:`_search_cost` counted on an even sample of at most
    :data:`PLAN_SAMPLE` codes."""
    step = max(1, -(-len(words) // PLAN_SAMPLE))
    sample = words[::step]
    return _search_cost(sample, bits, bands, radius, scale=len(words) / len(sample))


def _bands(
    words: np.ndarray, bits: int, bands: int
) -> Iterator[tuple[int, np.ndarray]]:
    """(width in bits, keys) of each of ``bands`` bands cut from ``bits``-bit
    codes held as big-endian uint64 words (pigeonhole: codes within ``d``
    bits differ in at most ``d // bands`` bits of some band)."""
    for b in range(bands):
        yield _band_at(words, bits, bands, b)


def _band_at(
    words: np.ndarray, bits: int, bands: int, b: int
) -> tuple[int, np.ndarray]:
    """(width in bits, keys) of band ``b`` of ``bands`` (see :func:`_bands`)."""
    skip = words.shape[1] * 64 - bits  # leading zero bits of the padded words
    lo, hi = bits * b // bands + skip, bits * (b + 1) // bands + skip
    return hi - lo, _band(words, lo, hi)


def _band(words: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Bits ``lo`` to ``hi`` (from the most significant, at most 62) of
    codes held as big-endian uint64 words, as integers."""
    i0, i1 = lo // 64, (hi - 1) // 64
    if i0 == i1:
        shift = np.uint64(64 * (i0 + 1) - hi)
        mask = np.uint64((1 << (hi - lo)) - 1)
        return ((words[:, i0] >> shift) & mask).astype(np.int64)
    low = 64 * (i0 + 1) - lo  # bits from the end of word i0
    high = hi - 64 * i1  # bits from the start of word i1
    a = words[:, i0] & np.uint64((1 << low) - 1)
    b = words[:, i1] >> np.uint64(64 - high)
    return ((a << np.uint64(high)) | b).astype(np.int64)


def _query_plan(n: int, m: int, bits: int, max_distance: int) -> tuple[int, int]:
    """Bands and per-band radius for searching ``m`` queried codes among
    ``n``: each band's keys are sorted once (``n``), and each queried key
    is looked up with every flip of up to ``radius`` of its bits (its
    neighbours, ``m`` times their number), so nothing is done per mask over
    all ``n`` codes; the expected candidates among ``n * m`` random pairs
    are counted too."""
    best = None
    for bands in range(max(1, -(-bits // 62)), bits + 1):
        radius = max_distance // bands
        width = -(-bits // bands)  # the widest band
        if radius > width:
            continue
        near = sum(comb(width, k) for k in range(radius + 1))
        candidates = n * m * near * 2.0 ** -(bits // bands)
        cost = bands * (4.0 * n + 8.0 * m * near + candidates)
        if best is None or cost < best[0]:
            best = (cost, bands, radius)
    assert best is not None
    return best[1], best[2]


def _query_search(
    words: np.ndarray,
    bits: int,
    max_distance: int,
    asked: np.ndarray,
    stats: dict[str, int],
    threads: int = 1,
) -> list[np.ndarray]:
    """Pairs (as i * n + j, i < j) with a queried member (``asked``: row
    numbers) and codes within ``max_distance`` bits. Codes within ``d`` bits
    differ in at most ``d // bands`` bits of some band (pigeonhole): per
    band the codes are put in key order once (:class:`_Buckets`), and the
    queried keys with up to that many bits flipped are looked up in them.
    The cost follows the codes queried (a night's new codes) and the
    candidates they meet, not masks times all codes. Bands are searched on
    ``threads`` threads (numpy's sorts, gathers and bit counts run without
    the GIL; each band in flight holds ~24 bytes a code)."""
    bands, radius = _query_plan(len(words), len(asked), bits, max_distance)

    def band(b: int) -> tuple[list[np.ndarray], int]:
        mine = {"candidates": 0}
        found = _band_pairs(words, bits, bands, b, radius, max_distance, asked, mine)
        return found, mine["candidates"]

    if threads > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(threads) as pool:
            done = list(pool.map(band, range(bands)))
    else:
        done = [band(b) for b in range(bands)]
    stats["candidates"] += sum(c for _found, c in done)
    return [pairs for found, _c in done for pairs in found]


def _band_pairs(
    words: np.ndarray,
    bits: int,
    bands: int,
    b: int,
    radius: int,
    max_distance: int,
    asked: np.ndarray,
    stats: dict[str, int],
) -> list[np.ndarray]:
    """The pairs of :func:`_query_search` found through band ``b``."""
    width, keys = _band_at(words, bits, bands, b)
    # the word screened first: the one farthest from this band's bits
    w = words.shape[1]
    screen = ((bits * b // bands + w * 64 - bits) // 64 + w // 2) % w
    buckets = _Buckets(keys, width, words[:, screen])
    flips = np.array(
        [
            sum(1 << bit for bit in chosen)
            for k in range(radius + 1)
            for chosen in combinations(range(width), k)
        ],
        dtype=np.int64,
    )
    step = max(1, PAIR_BATCH // (4 * len(flips)))
    out: list[np.ndarray] = []
    for start in range(0, len(asked), step):
        rows = asked[start : start + step]
        near = (keys[rows][:, None] ^ flips[None, :]).ravel()
        first, count = buckets.find(near)
        owner = np.repeat(rows, len(flips))
        out.extend(
            _checked(owner, first, count, buckets, words, screen, max_distance, stats)
        )
    return out


#: band keys of at most this many bits are found through a table of where
#: each key's codes start (2**bits + 1 integers), not by binary search
TABLE_BITS = 24


class _Buckets:
    """One band's codes in key order: ``order`` (their rows), ``screened``
    (the screened word of each, in that order: read in runs, not at random)
    and where each key's run starts (a table for keys of at most
    :data:`TABLE_BITS` bits, else the ordered keys, searched)."""

    def __init__(self, keys: np.ndarray, width: int, screened: np.ndarray) -> None:
        n = len(keys)
        shift = max(1, n.bit_length())
        if width + shift <= 63:  # key and row in one integer: a plain sort
            packed = (keys << shift) | np.arange(n, dtype=np.int64)
            packed.sort()
            self.order = packed & ((1 << shift) - 1)
            ordered = packed >> shift
            del packed
        else:
            self.order = np.argsort(keys, kind="stable")
            ordered = keys[self.order]
        self.screened = screened[self.order]
        if width <= TABLE_BITS:
            self.starts = np.zeros((1 << width) + 1, np.int64)
            np.cumsum(np.bincount(ordered, minlength=1 << width), out=self.starts[1:])
            self.ordered = None
        else:
            self.starts, self.ordered = None, ordered

    def find(self, near: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(first position, count) of each key of ``near`` in key order."""
        if self.starts is not None:
            first = self.starts[near]
            return first, self.starts[near + 1] - first
        # looked up in sorted order: each binary search starts where the
        # last one ended (2-6x faster than in random order, measured)
        by = np.argsort(near)
        first = np.empty(len(near), np.int64)
        count = np.empty(len(near), np.int64)
        first[by] = np.searchsorted(self.ordered, near[by], "left")
        count[by] = np.searchsorted(self.ordered, near[by], "right") - first[by]
        return first, count


def _checked(
    owner: np.ndarray,
    first: np.ndarray,
    count: np.ndarray,
    buckets: _Buckets,
    words: np.ndarray,
    screen: int,
    max_distance: int,
    stats: dict[str, int],
) -> list[np.ndarray]:
    """Candidate pairs (``owner[k]`` with the codes at key-order positions
    ``first[k]`` to ``first[k] + count[k]``) within ``max_distance``, as
    i * n + j (i < j), expanded and checked in batches of at most
    :data:`PAIR_BATCH` candidates (bounded memory): first on the screened
    word (read in key order; a pair within ``d`` bits is within ``d`` in
    any word), then the survivors on all words. A bucket of more than
    :data:`BUCKET` rows is searched once with all the queried codes that
    reach it (:func:`_dense_bucket`), never once per queried code."""
    n = len(words)
    hit = np.flatnonzero(count)
    if not len(hit):
        return []
    owner, first, count = owner[hit], first[hit], count[hit]
    out = []
    big = count > BUCKET
    if big.any():
        for start in np.unique(first[big]):
            reach = big & (first == start)
            members = buckets.order[start : start + int(count[reach][0])]
            out.extend(
                _dense_bucket(
                    np.unique(np.concatenate([members, owner[reach]])),
                    words,
                    max_distance,
                    stats,
                )
            )
        owner, first, count = owner[~big], first[~big], count[~big]
    mine = words[:, screen]
    for h0, h1 in _batches(count):
        c = count[h0:h1]
        rows = np.repeat(owner[h0:h1], c)
        at = np.repeat(first[h0:h1] - np.cumsum(c) + c, c) + np.arange(c.sum())
        stats["candidates"] += len(rows)
        near = np.bitwise_count(buckets.screened[at] ^ mine[rows]) <= max_distance
        rows, other = rows[near], buckets.order[at[near]]
        keep = rows != other
        rows, other = rows[keep], other[keep]
        if words.shape[1] > 1:
            keep = _distance(words, rows, other) <= max_distance
            rows, other = rows[keep], other[keep]
        out.append(np.minimum(rows, other) * n + np.maximum(rows, other))
    return out


#: leaders near nothing in a row before a dense bucket is searched pair by pair
LONERS = 16
#: a band bucket larger than this is searched by :func:`_dense_bucket`
#: instead of pair by pair (all its pairs would be quadratic in its size)
BUCKET = 128


def _batches(count: np.ndarray) -> Iterator[tuple[int, int]]:
    """Ranges [h0, h1) of ``count`` whose sums are about :data:`PAIR_BATCH`:
    a ragged expansion (``np.repeat`` by ``count``) in bounded memory."""
    edges = np.searchsorted(
        np.cumsum(count), np.arange(PAIR_BATCH, count.sum(), PAIR_BATCH)
    )
    for h0, h1 in zip(np.r_[0, edges], np.r_[edges, len(count)], strict=True):
        if h1 > h0:
            yield int(h0), int(h1)


def _dense_bucket(
    members: np.ndarray,
    words: np.ndarray,
    max_distance: int,
    stats: dict[str, int],
    bits: int | None = None,
) -> list[np.ndarray]:
    """Pairs within ``max_distance`` among ``members`` (rows of ``words``)
    that connect them exactly as all such pairs would, at a cost linear in
    the bucket when its codes are near-identical (constant or all-black
    images: the case that made a first merge quadratic).

    A leader's ball (the members within the distance of it) is connected
    through the leader; a member outside the ball can be within the
    distance of a ball member only if its distance to the leader is at most
    the ball member's plus the limit (triangle inequality), so only those
    pairs are compared; the rest is searched again with a new leader. A
    leader near nothing is dropped; after :data:`LONERS` of them in a row
    (codes spread out, not clustered) the rest is searched on the bits its
    codes do not share (:func:`_spread`). ``bits``: the codes' length (at
    most the words' bits)."""
    n = len(words)
    out = []
    rest = members
    alone = 0  # leaders in a row with nothing near them
    while len(rest) > BUCKET and alone < LONERS:
        lead = rest[0]
        d = _distance(words, np.full(len(rest), lead), rest)
        stats["candidates"] += len(rest) - 1
        inside = d <= max_distance
        ball, near = rest[inside], d[inside]
        if len(ball) == 1:  # near nothing left: drop it
            alone += 1
            rest = rest[1:]
            continue
        alone = 0
        others, far = rest[~inside], d[~inside]
        peers = ball[ball != lead]
        out.append(np.minimum(lead, peers) * n + np.maximum(lead, peers))
        if len(others):
            out.extend(_across(ball, near, others, far, words, max_distance, stats))
        rest = others
    if len(rest) > 1:
        out.extend(_spread(rest, words, max_distance, stats, bits))
    return out


def _spread(
    members: np.ndarray,
    words: np.ndarray,
    max_distance: int,
    stats: dict[str, int],
    bits: int | None = None,
) -> list[np.ndarray]:
    """Pairs within ``max_distance`` among ``members`` (rows of ``words``,
    codes of ``bits`` bits) that connect them as all such pairs would, in a
    bucket of codes spread out rather than clustered. Its codes share their
    band key, so those bits say nothing about their distances: the bits
    they do not all share are searched again as codes of their own (a
    multi-index search on fewer bits, pigeonhole again, its buckets
    counted first), instead of pair by pair. Pair by pair when that is
    cheaper, or when no bit is left out (the search would not end)."""
    n, m = len(words), len(members)
    bits = words.shape[1] * 64 if bits is None else bits
    pairwise = m * (m - 1) / 2
    found = None
    if m > BUCKET:
        found = _full_search(words[members], bits, max_distance, stats, pairwise)
    if found is None:
        zeros = np.zeros(m, np.int64)
        return _equal_key_pairs(zeros, words, max_distance, stats, members, True)
    if not found:
        return []
    inner = np.unique(np.concatenate(found))
    a, b = members[inner // m], members[inner % m]
    return [np.minimum(a, b) * n + np.maximum(a, b)]


def _varying_columns(words: np.ndarray) -> np.ndarray:
    """Positions (from the most significant bit of the words) of the bits
    not the same in all codes."""
    differ = np.zeros(words.shape[1], np.uint64)
    for start in range(0, len(words), DECODE_BATCH):  # bounded temporaries
        chunk = words[start : start + DECODE_BATCH] ^ words[0]
        differ |= np.bitwise_or.reduce(chunk, axis=0)
    return np.flatnonzero(np.unpackbits(differ.astype(">u8").view(np.uint8)))


#: rows whose bits are counted to deal far from uniform bits among the bands
SAMPLE = 65_536
#: codes a plan's cost is counted on (:func:`_sampled_cost`; a million
#: 64-bit codes are planned as 630 masks, each a sort of the sample)
PLAN_SAMPLE = 16_384
#: a bit set in fewer than this share of codes (or more than 1 minus it) is
#: far from uniform (see :func:`_dealt`)
SKEWED = 0.2


def _dealt(words: np.ndarray, columns: np.ndarray, bands: int) -> np.ndarray:
    """``columns`` (bit positions) in the order the bands take them (each
    band a run of ``len(columns) * k // bands`` to the next): unchanged
    unless some bits are far from uniform (set in few codes or in nearly
    all, counted in an even sample of the codes), which are then dealt out
    one band after another, so no band's keys are mostly bits that say
    little (its buckets would hold most codes)."""
    step = max(1, len(words) // SAMPLE)
    sample = words[::step].astype(">u8")
    matrix = np.unpackbits(sample.view(np.uint8).reshape(len(sample), -1), axis=1)
    share = matrix[:, columns].mean(axis=0)
    skew = np.abs(share - 0.5)
    if not (skew > 0.5 - SKEWED).any():
        return columns
    width = len(columns)
    edges = [width * k // bands for k in range(bands + 1)]
    room = np.diff(edges)
    slots: list[list[int]] = [[] for _ in range(bands)]
    band = 0
    for c in columns[np.argsort(-skew, kind="stable")]:  # most skewed first
        while len(slots[band]) == room[band]:
            band = (band + 1) % bands
        slots[band].append(int(c))
        band = (band + 1) % bands
    return np.array([c for slot in slots for c in sorted(slot)], dtype=np.int64)


def _gathered(words: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """New codes of the bits at ``columns`` of ``words``, in that order, as
    the trailing bits of big-endian uint64 words: distances unchanged."""
    n, width = len(words), len(columns)
    out = np.empty((n, max(1, -(-width // 64))), np.uint64)
    pad = out.shape[1] * 64 - width
    for start in range(0, n, DECODE_BATCH):  # bounded temporaries
        chunk = words[start : start + DECODE_BATCH].astype(">u8")
        matrix = np.unpackbits(chunk.view(np.uint8).reshape(len(chunk), -1), axis=1)
        padded = np.zeros((len(chunk), pad + width), np.uint8)
        padded[:, pad:] = matrix[:, columns]
        out[start : start + len(chunk)] = np.packbits(padded, axis=1).view(">u8")
    return out


def _across(
    ball: np.ndarray,
    near: np.ndarray,
    others: np.ndarray,
    far: np.ndarray,
    words: np.ndarray,
    max_distance: int,
    stats: dict[str, int],
) -> list[np.ndarray]:
    """Pairs within ``max_distance`` between a ball (distances ``near`` to
    its leader) and the codes outside it (``far``), comparing only pairs
    the triangle inequality allows: ``near >= far - max_distance``."""
    n = len(words)
    by = np.argsort(-near, kind="stable")  # farthest from the leader first
    ball, near = ball[by], near[by]
    # per outside code: how many ball members are far enough from the leader
    count = np.searchsorted(-near, -(far - max_distance), side="right")
    has = np.flatnonzero(count)
    if not len(has):
        return []
    others, count = others[has], count[has]
    out = []
    for h0, h1 in _batches(count):
        c = count[h0:h1]
        rows = np.repeat(others[h0:h1], c)
        other = ball[np.arange(c.sum()) - np.repeat(np.cumsum(c) - c, c)]
        stats["candidates"] += len(rows)
        keep = _distance(words, rows, other) <= max_distance
        a, b = rows[keep], other[keep]
        out.append(np.minimum(a, b) * n + np.maximum(a, b))
    return out


def _equal_key_pairs(
    keys: np.ndarray,
    words: np.ndarray,
    max_distance: int,
    stats: dict[str, int],
    rows: np.ndarray | None = None,
    pairwise: bool = False,
    bits: int | None = None,
) -> list[np.ndarray]:
    """Pairs (as i * n + j, i < j) of rows with equal keys and codes within
    ``max_distance``, generated and checked in bounded batches; a bucket of
    more than :data:`BUCKET` rows goes to :func:`_dense_bucket` (unless
    ``pairwise``). ``rows``: the rows of ``words`` the keys belong to
    (default: all); ``bits``: the codes' length (see :func:`_spread`)."""
    n = len(words)
    if rows is None:
        rows = np.arange(len(keys))
    order = rows[np.argsort(keys, kind="stable")]
    ordered = np.sort(keys, kind="stable")
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    sizes = np.diff(np.r_[starts, len(keys)])
    multi = sizes > 1
    starts, sizes = starts[multi], sizes[multi]
    if not len(starts):
        return []
    out = []
    dense = sizes > BUCKET
    if dense.any() and not pairwise:
        for st, sz in zip(starts[dense], sizes[dense], strict=True):
            bucket = order[st : st + sz]
            out.extend(_dense_bucket(bucket, words, max_distance, stats, bits))
        starts, sizes = starts[~dense], sizes[~dense]
        if not len(starts):
            return out
    work = sizes * (sizes - 1) // 2
    cut = np.searchsorted(
        np.cumsum(work), np.arange(1, 1 + work.sum() // PAIR_BATCH) * PAIR_BATCH
    )
    for s0, s1 in zip(np.r_[0, cut], np.r_[cut, len(starts)]):
        st, sz = starts[s0 : s1 + 1], sizes[s0 : s1 + 1]
        if not len(st):
            continue
        rank = np.arange(sz.sum()) - np.repeat(np.cumsum(sz) - sz, sz)
        pos = np.repeat(st, sz) + rank
        count = np.repeat(sz, sz) - 1 - rank
        left = np.repeat(pos, count)
        right = (
            left
            + 1
            + (np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count))
        )
        a, b = order[left], order[right]
        stats["candidates"] += len(a)
        keep = _distance(words, a, b) <= max_distance
        a, b = a[keep], b[keep]
        out.append(np.minimum(a, b) * n + np.maximum(a, b))
    return out


def _components(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Connected component label of each of ``n`` nodes linked by pairs."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(i), dtype=np.int8), (i, j)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


DUPLICATES_SCHEMA = pa.schema(
    [
        ("kind", pa.string()),
        ("group_id", pa.string()),
        ("image_id", pa.string()),
        ("root", pa.string()),
        ("path", pa.string()),
        ("scene_index", pa.int32()),
        ("format", pa.string()),
        ("code", pa.string()),
        ("distance", pa.int32()),
    ]
)


#: near pairs of one merge, kept for the next (see :func:`duplicate_table`)
PAIRS_SCHEMA = pa.schema(
    [
        ("kind", pa.string()),
        ("a", pa.string()),
        ("b", pa.string()),
        ("limit", pa.int32()),
    ]
)


def duplicate_table(
    scenes: pa.Table,
    images: pa.Table,
    data_distance: int = 24,
    mixed_distance: int = 8,
    known: Mapping[str, tuple[pa.Array, pa.Table]] | None = None,
    given: Mapping[str, pa.Table] | None = None,
) -> tuple[pa.Table, pa.Table]:
    """The ``duplicates`` table (one row per scene per group, unsorted) and
    the near pairs behind it (:data:`PAIRS_SCHEMA`).

    ``exact`` groups share the scene ISCC-SUM; ``near_data`` and ``near_mixed``
    groups are connected by Data-Code or ISCC-MIXED distances within the
    thresholds. A group spans at least two files; ``distance`` is to the
    group's first member (sorted by root, path and scene index).

    ``known`` maps a kind to the codes searched last time and the pairs found
    then: those pairs still hold among codes still present, so only codes
    not searched before are compared with all (a night's cost follows what
    changed). Pairs found with another limit are not used. ``given`` maps a
    kind to all its pairs (:data:`PAIRS_SCHEMA`), found elsewhere (see
    :mod:`biocodes.repository.candidates`): nothing is searched.
    """
    cols = ["image_id", "path", "scene_index", "iscc_code", "data_code", "iscc_mixed"]
    ok = pc.and_(pc.equal(scenes["status"], "ok"), pc.is_valid(scenes["iscc_code"]))
    live = scenes.select(cols)
    if not pc.all(pc.fill_null(ok, False)).as_py():  # no copy if all are live
        live = live.filter(ok)
    n = live.num_rows
    where = pc.index_in(live["image_id"], value_set=images["image_id"].combine_chunks())
    root = images["root"].take(where)
    fmt = images["format"].take(where)
    # each scene's rank in (root, path, scene index) order: a group's first
    # member is its lowest rank (no sorted copy of the table is made)
    keys = pa.table({"r": root, "p": live["path"], "s": live["scene_index"]})
    order = pc.sort_indices(
        keys, sort_keys=[("r", "ascending"), ("p", "ascending"), ("s", "ascending")]
    ).to_numpy()
    del keys
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    del order
    image_num = _encoded(live["image_id"])
    sum_num = _encoded(live["iscc_code"])
    parts = []
    found_pairs = []

    def emit(
        kind: str,
        rows: np.ndarray,
        label: np.ndarray,
        column: str,
        dist: Callable[[np.ndarray, np.ndarray], np.ndarray],
    ) -> None:
        """Rows of the groups ``label`` forms among ``rows`` (positions in
        ``live``) that span two files and (near kinds) more than one set of
        pixels; ``dist(rows, firsts)`` gives each row's distance to its
        group's first member."""
        if not len(rows):
            return
        spans = _distinct(label, image_num[rows]) >= 2
        if kind != "exact":
            spans &= _distinct(label, sum_num[rows]) >= 2
        keep = spans[label]
        rows, label = rows[keep], label[keep]
        if not len(rows):
            return
        by = np.lexsort((rank[rows], label))
        rows, label = rows[by], label[by]
        start = np.r_[True, label[1:] != label[:-1]]
        first = rows[start][np.cumsum(start) - 1]
        taken = pa.array(rows)
        code = live[column].take(taken)
        first_code = live[column].take(pa.array(first))
        parts.append(
            pa.table(
                {
                    "kind": pa.array([kind] * len(rows), pa.string()),
                    "group_id": pc.binary_join_element_wise(f"{kind}:", first_code, ""),
                    "image_id": live["image_id"].take(taken),
                    "root": root.take(taken),
                    "path": live["path"].take(taken),
                    "scene_index": live["scene_index"].take(taken),
                    "format": fmt.take(taken),
                    "code": code,
                    "distance": pa.array(dist(rows, first), pa.int32()),
                },
                schema=DUPLICATES_SCHEMA,
            )
        )

    every = np.arange(n)
    emit("exact", every, sum_num, "iscc_code", lambda r, f: np.zeros(len(r)))
    for kind, column, limit in (
        ("near_data", "data_code", data_distance),
        ("near_mixed", "iscc_mixed", mixed_distance),
    ):
        codes = live[column].combine_chunks()
        encoded = pc.dictionary_encode(codes)
        unique = encoded.dictionary
        index = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)
        have = np.flatnonzero(index >= 0)
        index = index.astype(np.int64)
        words, bits = code_words(unique)
        before = (known or {}).get(kind)
        if before is not None and len(before[1]):
            if before[1]["limit"][0].as_py() != limit:
                before = None
        if given is not None:
            a = pc.index_in(given[kind]["a"], unique).to_numpy(zero_copy_only=False)
            b = pc.index_in(given[kind]["b"], unique).to_numpy(zero_copy_only=False)
            i, j = a.astype(np.int64), b.astype(np.int64)
        elif before is None:
            i, j, _ = _pairs_within(words, bits, limit)
        else:
            searched, pairs = before
            fresh = pc.invert(pc.is_in(unique, searched)).to_numpy(zero_copy_only=False)
            fresh |= _lost_a_member(unique, searched, pairs)
            i, j, _ = _pairs_within(words, bits, limit, query=fresh)
            a = pc.index_in(pairs["a"], unique)
            b = pc.index_in(pairs["b"], unique)
            still = pc.and_(pc.is_valid(a), pc.is_valid(b))
            i = np.concatenate([i, a.filter(still).to_numpy().astype(np.int64)])
            j = np.concatenate([j, b.filter(still).to_numpy().astype(np.int64)])
            # a group searched again finds some of last night's pairs again
            both = np.unique(np.minimum(i, j) * len(words) + np.maximum(i, j))
            i, j = both // len(words), both % len(words)
        found_pairs.append(
            pa.table(
                {
                    "kind": pa.array([kind] * len(i), pa.string()),
                    "a": unique.take(pa.array(i, pa.int64())),
                    "b": unique.take(pa.array(j, pa.int64())),
                    "limit": pa.array([limit] * len(i), pa.int32()),
                },
                schema=PAIRS_SCHEMA,
            )
        )
        if len(have) < 2:
            continue
        group = _components(len(words), i, j)

        def dist(
            rows: np.ndarray,
            first: np.ndarray,
            index: np.ndarray = index,
            words: np.ndarray = words,
        ) -> np.ndarray:
            return _distance(words, index[rows], index[first])

        emit(kind, have, group[index[have]], column, dist)
    table = pa.concat_tables(parts) if parts else DUPLICATES_SCHEMA.empty_table()
    return table, pa.concat_tables(found_pairs)


def _lost_a_member(unique: pa.Array, searched: pa.Array, pairs: pa.Table) -> np.ndarray:
    """Which of ``unique`` (this night's codes) were in a group, by last
    night's pairs, with a code now gone. A dense bucket keeps only the pairs
    that connect it (see :func:`_dense_bucket`), so a group that lost a
    member may hang together through pairs never kept: its codes are
    searched again."""
    none = np.zeros(len(unique), bool)
    gone = pc.filter(searched, pc.invert(pc.is_in(searched, unique)))
    if not len(gone) or not len(pairs):
        return none
    ends = pc.unique(
        pa.concat_arrays([pairs["a"].combine_chunks(), pairs["b"].combine_chunks()])
    )
    a = pc.index_in(pairs["a"], ends).to_numpy(zero_copy_only=False)
    b = pc.index_in(pairs["b"], ends).to_numpy(zero_copy_only=False)
    label = _components(len(ends), a, b)
    lost = pc.index_in(gone, ends).drop_null().to_numpy(zero_copy_only=False)
    if not len(lost):
        return none
    touched = ends.filter(pa.array(np.isin(label, label[lost])))
    return pc.is_in(unique, touched).to_numpy(zero_copy_only=False)


def _encoded(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Integer ids of a column's values (equal values, equal ids)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    return pc.dictionary_encode(column).indices.to_numpy(zero_copy_only=False)


def _distinct(label: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per label (0..max): how many distinct values its rows hold."""
    size = int(label.max()) + 1 if len(label) else 0
    pairs = np.unique(np.stack([label, values.astype(np.int64)]), axis=1)
    return np.bincount(pairs[0], minlength=size)


def duplicate_rows(
    scenes: list[dict],
    images: list[dict],
    data_distance: int = 24,
    mixed_distance: int = 8,
) -> list[dict]:
    """:func:`duplicate_table` for rows, sorted as the catalogue stores them."""
    cols = [
        "image_id",
        "path",
        "scene_index",
        "iscc_code",
        "data_code",
        "iscc_mixed",
        "status",
    ]
    st = pa.table(
        {
            c: pa.array(
                [s.get(c) for s in scenes],
                pa.int32() if c == "scene_index" else pa.string(),
            )
            for c in cols
        }
    )
    it = pa.table(
        {
            c: pa.array([i.get(c) for i in images], pa.string())
            for c in ("image_id", "root", "format")
        }
    )
    table, _ = duplicate_table(st, it, data_distance, mixed_distance)
    keys = ["kind", "group_id", "image_id", "scene_index"]
    return table.sort_by([(k, "ascending") for k in keys]).to_pylist()
