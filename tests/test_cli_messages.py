"""What the commands print, for a person: check reads back what biocode
printed escaped; similar and verify refuse a wrong argument in one line and
say when nothing matched; a file that is not an image says so."""

import os

import numpy as np
from conftest import run_cli

from biocodes import synth


def picture(seed):
    return np.random.default_rng(seed).integers(0, 255, (16, 16), dtype=np.uint8)


def test_check_reads_back_names_biocode_printed_escaped(tmp_path):
    latin = os.fsdecode(str(tmp_path).encode() + b"/caf\xe9.png")
    newline = str(tmp_path / "two\nlines.png")
    for i, name in enumerate((latin, newline)):
        synth.write_png(name, picture(i))
    for flag in ([], ["--json"]):
        printed = run_cli("biocode", *flag, latin, newline)
        assert printed.returncode == 0, printed.stderr
        codes = tmp_path / "codes.txt"
        codes.write_text(printed.stdout)
        proc = run_cli("check", codes)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert proc.stdout.splitlines() == [
            f"{tmp_path}/caf\\xe9.png#scene0: OK",
            f"{tmp_path}/two\\nlines.png#scene0: OK",
        ]
