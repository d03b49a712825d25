"""Fuzz the plane sources with mutated files (hypothesis), in its own process.

Run by tests/test_fuzz.py as ``python fuzz_sources.py DIR EXAMPLES``: a crash
(segfault in a decoder) shows as the process's exit status, and a hang as a
faulthandler dump after HANG_SECONDS, so neither can take pytest down with it.

Properties, for every mutated file:
- biocode() returns or raises a BiocodeError, never another exception;
- a truncated file gives an error or exactly the original codes (cutting
  bytes can never make other valid pixels);
- a file with flipped or inserted bytes gives an error or codes of the pixels
  that an independent decoder (tifffile, Pillow, zarr) reads from it.
"""

from __future__ import annotations

import faulthandler
import logging
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from biocodes import synth
from biocodes.core.fingerprint import biocode
from biocodes.core.imagewalk import iter_planes
from biocodes.infra.errors import BiocodeError

HANG_SECONDS = 60
# quiet, but not disabled: biocodes watches tifffile's warnings
for _name in ("tifffile", "bioio", "bioio_base"):
    logging.getLogger(_name).propagate = False
    logging.getLogger(_name).addHandler(logging.NullHandler())


def seeds(tmp: Path) -> dict[str, Path]:
    """One small valid file (or zarr chunk's store) per format."""
    a = synth.random_scene((1, 2, 2, 24, 20), "uint16", seed=4)
    return {
        "tiff": synth.write_tiff(tmp / "seed.tif", a[0, 0]),
        "ome-tiff-zlib": synth.write_ome_tiff(
            tmp / "seed.ome.tif", a, compression="zlib"
        ),
        "png": synth.write_png(tmp / "seed.png", a[0, 0, 0]),
        "czi": synth.write_czi(tmp / "seed.czi", a),
        "zarr": synth.write_ome_zarr(tmp / "seed.ome.zarr", a, zarr_format=3, levels=1),
    }


def target_file(path: Path) -> Path:
    """The file a mutation changes: the file itself, or a zarr store's first chunk."""
    if path.is_dir():
        return sorted(
            p for p in (path / "0").rglob("*") if p.is_file() and p.name != "zarr.json"
        )[0]
    return path


def reference_planes(path: Path) -> np.ndarray | None:
    """The pixels an independent decoder reads, flattened, or None if it cannot."""
    import tifffile
    import zarr
    from PIL import Image

    try:
        if path.is_dir():
            data = zarr.open_array(str(path / "0"), mode="r")[:]
        elif path.suffix == ".png":
            with Image.open(path) as im:
                data = np.asarray(im)
        elif path.suffix == ".tif":
            data = tifffile.imread(path)
        else:  # CZI: Zeiss's libCZI, where biocodes reads with aicspylibczi
            data = _czi_planes(path)
    except Exception:
        return None
    return np.asarray(data).reshape(-1)


def _czi_planes(path: Path) -> np.ndarray:
    from pylibCZIrw import czi as pyczi

    with pyczi.open_czi(str(path)) as doc:
        box = doc.total_bounding_box
        planes = [
            doc.read(plane={"Z": z, "C": c, "T": t})
            for z in range(*box.get("Z", (0, 1)))
            for c in range(*box.get("C", (0, 1)))
            for t in range(*box.get("T", (0, 1)))
        ]
    return np.stack(planes)


def check(path: Path, original: list[str], truncated: bool) -> str:
    try:
        result = biocode(path, overlap=False)
    except BiocodeError as exc:
        assert exc.kind != "internal", f"internal error: {exc}"
        return "error"
    codes = [p["iscc_code"] for p in result["parts"]]
    if truncated:
        assert codes == original, f"truncated file gave other codes: {codes}"
        return "same"
    if codes == original:
        return "same"
    ref = reference_planes(path)
    assert ref is not None, "codes for a file no reference decoder can read"
    ours = np.concatenate([p.array.reshape(-1) for p in iter_planes(path)])
    assert np.array_equal(np.sort(ours), np.sort(ref)), "codes from other pixels"
    return "other pixels"


def fuzz(fmt: str, seed: Path, work: Path, examples: int) -> dict[str, int]:
    original = [p["iscc_code"] for p in biocode(seed)["parts"]]
    outcomes: dict[str, int] = {}
    size = target_file(seed).stat().st_size

    mutation = st.one_of(
        st.tuples(st.just("truncate"), st.integers(0, size - 1)),
        st.tuples(
            st.just("flip"),
            st.lists(
                st.tuples(st.integers(0, size - 1), st.integers(1, 255)),
                min_size=1,
                max_size=8,
            ),
        ),
        st.tuples(
            st.just("insert"), st.integers(0, size), st.binary(min_size=1, max_size=64)
        ),
    )

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(mutation)
    def one(m) -> None:
        case = work / f"case-{fmt}"
        shutil.rmtree(case, ignore_errors=True)
        case.mkdir()
        path = case / seed.name
        if seed.is_dir():
            shutil.copytree(seed, path)
        else:
            shutil.copyfile(seed, path)
        target = target_file(path)
        data = bytearray(target.read_bytes())
        if m[0] == "truncate":
            data = data[: m[1]]
        elif m[0] == "flip":
            for pos, xor in m[1]:
                data[pos] ^= xor
        else:
            data[m[1] : m[1]] = m[2]
        target.write_bytes(bytes(data))
        faulthandler.dump_traceback_later(HANG_SECONDS, exit=True)
        try:
            outcome = check(path, original, truncated=m[0] == "truncate")
        finally:
            faulthandler.cancel_dump_traceback_later()
        outcomes[outcome] = outcomes.get(outcome, 0) + 1

    one()
    return outcomes


def main() -> None:
    work, examples = Path(sys.argv[1]), int(sys.argv[2])
    only = sys.argv[3:]
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        for fmt, seed in seeds(Path(tmp)).items():
            if only and fmt not in only:
                continue
            outcomes = fuzz(fmt, seed, Path(tmp), examples)
            print(
                f"{fmt}: {sum(outcomes.values())} mutated files {outcomes}", flush=True
            )


if __name__ == "__main__":
    main()
