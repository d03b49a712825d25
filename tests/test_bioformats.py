"""Bio-Formats, offline, against the native readers on generated fixtures.

Bio-Formats runs in a subprocess (the CLI), so its JVM never lives in the test
process. Each fixture is read twice: by the native reader biocodes picks, and
by Bio-Formats (``--reader bioformats``); the outcomes are recorded below and
in docs/reading.md ("Bio-Formats").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mrc
import pytest
from compat_fixtures import build

from biocodes import synth
from biocodes.core.fingerprint import biocode
from biocodes.infra.errors import BiocodeError
from biocodes.sources import bioformats
from biocodes.sources.bioio import choose_readers

#: the same codes and dims from Bio-Formats and from the native reader
EQUAL = [
    "gray.ome.tif",
    "multi.ome.tif",
    "float.ome.tif",
    "int8.ome.tif",
    "rgb.ome.tif",
    "imagej.tif",
    "gray.czi",
    "rgb.czi",  # CZI stores BGR; both readers hand back R, G, B
    "gray8.png",
    "gray16.png",
    "rgb.png",
    "cells.dv",  # both top-down (DV stores rows bottom-up)
]


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("bioformats")
    files = build(out)
    rgb = synth.random_scene((30, 40, 3), "uint8", seed=14)
    files["rgb.czi"] = synth.write_czi(out / "rgb.czi", [rgb[None, None, None]])
    cells = synth.random_scene((1, 1, 6, 32, 48), "uint16", seed=7)
    files["cells.dv"] = out / "cells.dv"
    mrc.imwrite(str(files["cells.dv"]), cells[0, 0])  # rows stored bottom-up
    files["cells-top-down.ome.tif"] = synth.write_ome_tiff(
        out / "cells-top-down.ome.tif", cells[..., ::-1, :]
    )
    scene = synth.random_scene((2, 3, 4, 32, 48), "uint16", seed=21)
    files["gen.ics"] = synth.write_ics(out / "gen.ics", scene)
    files["gen.ome.tif"] = synth.write_ome_tiff(out / "gen.ome.tif", scene)
    return files


def bf_cli(*paths: Path, reader: str = "bioformats", env: dict | None = None):
    """``biocodes biocode --json`` in a subprocess: {name: result or error}."""
    cmd = [sys.executable, "-m", "biocodes.cli", "biocode", "--json"]
    proc = subprocess.run(
        [*cmd, "--reader", reader, "--", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )
    found = {}
    for line in proc.stdout.splitlines():
        r = json.loads(line)
        found[Path(r["path"]).name] = r
    return found, proc


def parts(result: dict) -> list[tuple]:
    return [(p["iscc_code"], p["dims"]) for p in result["parts"]]


@pytest.fixture(scope="module")
def compared(fixtures):
    names = [*EQUAL, "stack.tif", "multi.czi", "truncated.ome.tif"]
    found, proc = bf_cli(*(fixtures[n] for n in names))
    assert set(found) == set(names), proc.stderr[-3000:]
    return found


def test_bioformats_is_set_up_offline():
    assert bioformats.problem() is None, bioformats.problem()


@pytest.mark.parametrize("name", EQUAL)
def test_bioformats_agrees_with_native_readers(fixtures, compared, name):
    native = biocode(fixtures[name])
    assert compared[name]["format"] == "bioformats"
    assert parts(compared[name]) == parts(native)


def test_recorded_differences(fixtures, compared):
    # a plain TIFF page stack: pages are Z natively, T in Bio-Formats; with
    # one of them only, IMAGEWALK visits the same planes: same codes
    native = biocode(fixtures["stack.tif"])
    bf = compared["stack.tif"]
    assert [p["dims"]["Z"] for p in native["parts"]] == [3]
    assert [(p["dims"]["T"], p["dims"]["Z"]) for p in bf["parts"]] == [(3, 1)]
    assert [p["iscc_code"] for p in bf["parts"]] == [
        p["iscc_code"] for p in native["parts"]
    ]
    # a CZI whose scenes differ in shape: Bio-Formats gives scene 1 the
    # planes of scene 0 (T=2, C=2, Z=3), planes that are not in the file
    native = biocode(fixtures["multi.czi"])
    bf = compared["multi.czi"]
    assert parts(bf)[0] == parts(native)[0]
    assert bf["parts"][1]["dims"] != native["parts"][1]["dims"]
    # a truncated OME-TIFF: native readers refuse it, Bio-Formats gives a
    # code of pixels that are not in the file; why it never runs after them
    with pytest.raises(BiocodeError):
        biocode(fixtures["truncated.ome.tif"])
    assert compared["truncated.ome.tif"]["parts"]


def test_a_format_only_bioformats_reads(fixtures):
    """ICS has no native reader: chosen automatically, it gives the codes of
    the same pixels in an OME-TIFF. DV read natively, flipped to top-down,
    equals its top-down OME-TIFF too."""
    found, proc = bf_cli(fixtures["gen.ics"], reader="auto")
    assert found["gen.ics"]["format"] == "bioformats", proc.stderr[-2000:]
    assert parts(found["gen.ics"]) == parts(biocode(fixtures["gen.ome.tif"]))
    assert parts(biocode(fixtures["cells.dv"])) == parts(
        biocode(fixtures["cells-top-down.ome.tif"])
    )


@pytest.mark.parametrize(
    "name", ["a.tif", "a.ome.tif", "a.czi", "a.png", "a.dv", "a.nd2"]
)
def test_never_ahead_of_a_native_reader(name):
    readers = choose_readers(name)
    assert readers
    assert all("bioformats" not in r.__module__ for r in readers)


def test_ics_goes_to_bioformats():
    (reader,) = choose_readers("a.ics")
    assert reader.__module__.startswith("bioio_bioformats")


def test_nothing_is_downloaded(fixtures, tmp_path):
    """A fresh HOME (no Maven or JDK caches) and every proxy pointing at a
    closed port: any download would fail; the read must not need one."""
    blocked = "http://127.0.0.1:9"
    env = {
        "HOME": str(tmp_path),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "HTTP_PROXY": blocked,
        "HTTPS_PROXY": blocked,
        "http_proxy": blocked,
        "https_proxy": blocked,
        "NO_PROXY": "",
    }
    found, proc = bf_cli(fixtures["gen.ics"], reader="auto", env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert parts(found["gen.ics"]) == parts(biocode(fixtures["gen.ome.tif"]))
    made = [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")]
    assert not [p for p in made if p.split("/")[0] in (".jgo", ".m2", "cache")]


def test_missing_setup_is_a_one_line_error(fixtures, tmp_path):
    found, proc = bf_cli(
        fixtures["gen.ics"],
        reader="auto",
        env={bioformats.JAR_ENV: str(tmp_path / "none.jar")},
    )
    assert proc.returncode == 1
    (line,) = proc.stderr.strip().splitlines()
    assert "gen.ics" in line and "biocodes bioformats-setup" in line
    assert found["gen.ics"]["error"]["type"] == "unsupported"
