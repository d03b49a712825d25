"""Our per-scene codes equal iscc-bio 0.2.0's wherever it reads pixels correctly.

The reference answers are recorded by scripts/record_iscc_bio.py, which runs
iscc-bio 0.2.0 from PyPI in its own venv on the fixtures of compat_fixtures.
"""

import json
from pathlib import Path

import compat_fixtures
import pytest

from biocodes import synth
from biocodes.core.fingerprint import biocode
from biocodes.infra.errors import TruncatedError

RECORD = json.loads(
    (Path(__file__).parent / "data" / "iscc_bio_0.2.0.json").read_text()
)
THEIRS = RECORD["results"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return compat_fixtures.build(tmp_path_factory.mktemp("compat"))


def test_record_is_from_iscc_bio_0_2_0():
    assert RECORD["iscc_bio"] == "0.2.0"
    assert set(THEIRS) == set(compat_fixtures.AGREE) | set(compat_fixtures.DIFFER)


@pytest.mark.parametrize("name", compat_fixtures.AGREE)
def test_parts_identical_where_iscc_bio_is_right(files, name):
    ours = biocode(files[name], simprints=True)["parts"]
    theirs = THEIRS[name]["parts"]
    assert len(ours) == len(theirs) > 0
    for mine, ref in zip(ours, theirs):
        assert mine["iscc_code"] == ref["iscc_code"]
        assert mine["units"] == ref["units"]
        assert mine["simprints"] == ref["simprints"]


def test_raw_file_code_identical(files):
    # PNG files are byte-stable across runs; OME-TIFF and CZI embed UUIDs
    for name in ("gray8.png", "gray16.png"):
        assert biocode(files[name])["iscc_code"] == THEIRS[name]["iscc_code"]


@pytest.mark.parametrize("name", sorted(compat_fixtures.DIFFER))
def test_documented_differences(files, name):
    theirs = [p["iscc_code"] for p in THEIRS[name]["parts"]]
    if name == "truncated.ome.tif":
        assert len(theirs) == 1  # a code for pixels that are not in the file
        with pytest.raises(TruncatedError):
            biocode(files[name])
        return
    truth = synth.expected_biocode(compat_fixtures.arrays()[name])
    ours = [p["iscc_code"] for p in biocode(files[name])["parts"]]
    assert ours == truth
    assert theirs != truth, compat_fixtures.DIFFER[name]
