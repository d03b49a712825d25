"""Real headless Chromium (Debian's package) for tests of pages we write."""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]


def chromium() -> str:
    """Chromium's path; installed with apt-get when missing (as CI does on a
    fresh machine). Skips only outside CI when it cannot be installed."""
    found = shutil.which("chromium")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-q"], env=env, timeout=600)
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "chromium"],
            env=env,
            timeout=1200,
            check=True,
            capture_output=True,
        )
        found = shutil.which("chromium")
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail("headless Chromium is needed in CI and could not be installed")
    pytest.skip("chromium is not installed and cannot be installed here")


def _run(page: Path, *args: str) -> str:
    # a profile of its own: with the shared default one, a second Chromium
    # started while another runs (two suites at once) hands its page to the
    # first and prints another page's DOM
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        command = [chromium(), *FLAGS, f"--user-data-dir={profile}", *args]
        proc = subprocess.run(
            [*command, page.resolve().as_uri()],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def dump_dom(page: Path) -> str:
    """The page's DOM after its load event (scripts have run)."""
    return _run(page, "--dump-dom")


def screenshot(page: Path, png: Path, width: int = 1280, height: int = 1400) -> Path:
    _run(page, f"--screenshot={png}", f"--window-size={width},{height}")
    assert png.exists()
    return png
