"""Peak memory while hashing a 256 MiB scene stays at a few planes."""

import tracemalloc

import numpy as np
import pytest
import tifffile
import zarr

from biocodes.core.fingerprint import biocode

Z, Y, X = 64, 1024, 2048  # 64 planes of 4 MiB: a 256 MiB uint16 scene
PLANE = Y * X * 2


def planes():
    for z in range(Z):
        yield np.full((Y, X), z * 997, np.uint16)


def peak_during(fn):
    tracemalloc.start()
    try:
        result = fn()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("big")
    tif = tmp / "big.ome.tif"
    tifffile.imwrite(
        tif,
        planes(),
        shape=(Z, Y, X),
        dtype="uint16",
        ome=True,
        metadata={"axes": "ZYX"},
    )
    store = tmp / "big.ome.zarr"
    root = zarr.open_group(str(store), mode="w", zarr_format=3)
    axes = [{"name": n, "type": "space"} for n in "zyx"]
    root.attrs["ome"] = {
        "version": "0.5",
        "multiscales": [
            {
                "axes": axes,
                "datasets": [
                    {
                        "path": "0",
                        "coordinateTransformations": [
                            {"type": "scale", "scale": [1, 1, 1]}
                        ],
                    }
                ],
            }
        ],
    }
    arr = root.create_array(
        "0",
        shape=(Z, Y, X),
        chunks=(1, 512, 1024),
        dtype="uint16",
        config={"write_empty_chunks": True},  # plane 0 is all fill value
    )
    for z, plane in enumerate(planes()):
        arr[z] = plane
    return tif, store


@pytest.mark.slow
def test_peak_memory_is_a_few_planes(big):
    tif, store = big
    results = {}
    for path in (tif, store):
        result, peak = peak_during(lambda p=path: biocode(p))
        results[path.name] = result["parts"][0]["iscc_code"]
        # in flight: the plane being hashed, the next one read and turned into
        # canonical bytes (two copies), and the raw-file thread's read buffers
        assert peak < 3 * PLANE + 8 * 2**20, f"{path.name}: {peak / 2**20:.0f} MiB"
    assert len(set(results.values())) == 1


@pytest.mark.slow
def test_views_keep_memory_bounded(big, tmp_path):
    """Views in the same pass: working-resolution caches, not the scene."""
    from biocodes.core.fingerprint import imagecode
    from biocodes.views.build import ViewOptions

    tif, store = big
    opts = ViewOptions(thumbnails=str(tmp_path), max_views=5)
    for path in (tif, store):
        result, peak = peak_during(lambda p=path: imagecode(p, opts))
        part = result["parts"][0]
        assert part["views"] and part["iscc_mixed"].startswith("ISCC:")
        assert peak < 4 * PLANE + 16 * 2**20, f"{path.name}: {peak / 2**20:.0f} MiB"
