"""Shared fixtures: every image is generated here, nothing is downloaded."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import numpy as np
import pytest

logging.getLogger("bioio").setLevel(logging.ERROR)
# the tests read images they have just written: no settle time unless a
# test's config sets incremental.settle_seconds (subprocesses inherit this)
os.environ.setdefault("BIOCODES_SETTLE_SECONDS", "0")

DTYPES = ["uint8", "uint16", "uint32", "int8", "int16", "int32", "float32", "float64"]


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def run_cli(*args) -> subprocess.CompletedProcess:
    """Run the biocodes command as a user would, capturing its output."""
    return subprocess.run(
        [sys.executable, "-m", "biocodes.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )
