"""IMAGEWALK §7 test vectors and the canonical byte encoding."""

import hashlib

import numpy as np
import pytest

from biocodes.core.imagewalk import canonical_bytes, canonical_chunks, plane_order, walk
from biocodes.core.pixhash import pixhash
from biocodes.sources.array import ArraySource
from biocodes.synth import write_ome_tiff


def test_vector_1_uint8():
    assert canonical_bytes(np.array([[1, 2], [3, 4]], np.uint8)) == bytes([1, 2, 3, 4])


def test_vector_2_uint16_big_endian():
    plane = np.array([[256, 512], [768, 1024]], np.uint16)
    assert canonical_bytes(plane) == bytes([1, 0, 2, 0, 3, 0, 4, 0])


def test_vector_3_float32():
    plane = np.array([[1.0, 2.0]], np.float32)
    assert canonical_bytes(plane) == bytes.fromhex("3F800000 40000000")


def test_vector_4_traversal_order():
    source = ArraySource([np.full((2, 2, 2, 1, 1), 0xFF, np.uint8)])
    (scene,) = source.scenes
    order = [(p.z, p.c, p.t) for p in walk(source, scene)]
    assert order == [(z, c, t) for z in (0, 1) for c in (0, 1) for t in (0, 1)]
    data = b"".join(canonical_bytes(p.array) for p in walk(source, scene))
    assert data == b"\xff" * 8


def test_vector_5_two_scenes(tmp_path):
    one = np.full((1, 1, 1, 1, 1), 1, np.uint8)
    two = np.full((1, 1, 1, 1, 1), 2, np.uint8)
    path = write_ome_tiff(tmp_path / "two.ome.tif", [one, two])
    digests = pixhash(path, "sha256")["digests"]
    assert digests == [
        hashlib.sha256(b"\x01").hexdigest(),
        hashlib.sha256(b"\x02").hexdigest(),
    ]


def test_order_is_z_then_c_then_t():
    source = ArraySource([np.zeros((2, 3, 2, 1, 1), np.uint8)])
    order = list(plane_order(source.scenes[0]))
    assert order[:4] == [(0, 0, 0), (0, 0, 1), (0, 1, 0), (0, 1, 1)]
    assert len(order) == 12


@pytest.mark.parametrize("dtype", ["<u2", ">u2", "<f8", ">i4", "u1", "<i8"])
def test_chunks_equal_astype_for_any_byte_order_and_layout(dtype):
    a = (np.arange(3000 * 7) % 251).astype(dtype).reshape(3000, 7)
    expected = a.astype(a.dtype.newbyteorder(">")).tobytes()
    assert canonical_bytes(a) == expected
    assert canonical_bytes(a.T.copy().T) == expected  # Fortran-ordered input
    pieces = list(canonical_chunks(a, chunk_bytes=1000))
    assert b"".join(pieces) == expected
    assert max(map(len, pieces)) <= 1000


def test_non_2d_plane_is_refused():
    with pytest.raises(ValueError):
        canonical_bytes(np.zeros((2, 2, 2), np.uint8))
