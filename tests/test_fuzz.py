"""Mutated files through the plane sources (tests/fuzz_sources.py): an error
or the right code, never a crash, a hang or another exception. The fuzzer
runs in its own process, so a segfault or a hang fails this test instead of
killing pytest; derandomized, so CI sees the same files every run."""

import os
import subprocess
import sys
from pathlib import Path

#: mutated files per format: ~1 min for all five formats on 2 cores
EXAMPLES = int(os.environ.get("BIOCODES_FUZZ_EXAMPLES", "60"))
FORMATS = ["tiff", "ome-tiff-zlib", "png", "czi", "zarr"]


def test_mutated_files_give_an_error_or_the_right_code(tmp_path):
    script = Path(__file__).with_name("fuzz_sources.py")
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path), str(EXAMPLES)],
        capture_output=True,
        text=True,
        timeout=900,  # hangs are caught per file after 60 s; this bounds the rest
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    lines = proc.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == FORMATS
    for line in lines:
        assert f": {EXAMPLES} mutated files" in line, line
        assert "'error'" in line, line  # the mutations did break files
