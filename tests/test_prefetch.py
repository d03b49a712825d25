"""The background reader: order, errors and shutdown."""

import threading
import time

import numpy as np
import pytest

from biocodes import synth
from biocodes.core.codes import raw_file_code
from biocodes.core.fingerprint import biocode
from biocodes.core.prefetch import prefetch


def prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("biocodes-")]


def test_items_come_in_order_one_ahead():
    produced = []

    def items():
        for i in range(20):
            produced.append(i)
            yield i

    got = []
    for i in prefetch(items()):
        time.sleep(0.005)  # the producer has time to run ahead, if it would
        got.append(i)
        # item i is being used; only i + 1 may have been made meanwhile
        assert len(produced) <= i + 2
    assert got == list(range(20))
    assert not prefetch_threads()


def test_producer_errors_surface_at_their_position():
    def items():
        yield 1
        yield 2
        raise ValueError("plane 3 is corrupt")

    got = []
    with pytest.raises(ValueError, match="plane 3"):
        for i in prefetch(items()):
            got.append(i)
    assert got == [1, 2]
    assert not prefetch_threads()


def test_a_consumer_that_stops_early_stops_the_producer():
    closed = threading.Event()

    def items():
        try:
            for i in range(10_000):
                yield np.zeros(1000) + i
        finally:
            closed.set()

    for i, _ in enumerate(prefetch(items())):
        if i == 3:
            break
    assert closed.is_set()
    assert not prefetch_threads()


def test_a_failing_scene_cancels_the_raw_file_hash(tmp_path):
    """The raw-file hash runs beside the walk; a bad scene must not leave it
    running, and the error is the scene's."""
    path = synth.write_ome_tiff(
        tmp_path / "t.ome.tif", synth.random_scene((1, 1, 8, 1024, 1024))
    )
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 60_000])
    from biocodes.infra.errors import TruncatedError

    with pytest.raises(TruncatedError):
        biocode(path)
    assert not [t for t in threading.enumerate() if "biocodes-" in t.name]
    cancel = threading.Event()
    cancel.set()
    from concurrent.futures import CancelledError

    with pytest.raises(CancelledError):
        raw_file_code(path, cancel)


@pytest.mark.parametrize("fmt", ["tiff", "zarr"])
def test_overlapped_and_serial_walks_give_the_same_biocode(tmp_path, fmt):
    scenes = [
        synth.random_scene((1, 2, 3, 512, 1024), seed=1),
        synth.random_scene((2, 1, 2, 600, 700), "float32", seed=2),
    ]
    if fmt == "tiff":
        path = synth.write_ome_tiff(tmp_path / "m.ome.tif", scenes)
    else:
        path = synth.write_bioformats2raw(tmp_path / "m.zarr", scenes, 3)
    overlapped = biocode(path, simprints=True, overlap=True)
    serial = biocode(path, simprints=True, overlap=False)
    assert overlapped == serial
    assert [p["iscc_code"] for p in serial["parts"]] == synth.expected_biocode(scenes)
