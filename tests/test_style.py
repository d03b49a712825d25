"""The code base stays ruff-clean (run as part of the suite, so CI checks it)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_clean():
    proc = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_snakefmt_applied():
    tool = Path(sys.executable).parent / "snakefmt"
    proc = subprocess.run(
        [tool, "--check", "."], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_snakemake_lint_clean():
    tool = Path(sys.executable).parent / "snakemake"
    proc = subprocess.run([tool, "--lint"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0 and "good condition" in proc.stdout + proc.stderr, (
        proc.stdout + proc.stderr
    )
