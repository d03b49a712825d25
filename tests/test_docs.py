"""The documentation (README.md, docs/*.md) as a user meets it: every relative
link leads to a file (and a heading) that exists, every page is reachable
from the README, and every example is either run here or says why not.

A fenced block is run when the line before it is ``<!-- test -->``: Python
blocks with this interpreter, shell blocks with bash -e (``.venv/bin`` on the
PATH), both in a folder holding what a user has after ``bash
scripts/example.sh``: the built-in example under ``example/`` and its
catalogue under ``results/`` (built in-process, as tests/catalogues.py does).
A YAML block marked ``<!-- test: config -->`` is merged over
config/config.yaml as Snakemake would and checked against the schema. A
Python or shell block that cannot run here (a cluster, your own files, a
benchmark) must be marked ``<!-- not run: REASON -->``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from catalogues import build_catalogue

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINKED = [*PAGES, ROOT / "config" / "README.md"]
RUNNABLE = {"python", "bash", "sh", "shell", "console"}
MARKER = re.compile(r"<!--\s*(test(?::\s*(\w+))?|not run:\s*(.*?))\s*-->")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


@dataclass
class Block:
    page: Path
    line: int
    lang: str
    code: str
    marker: str | None  # "test", "test: config", "not run", or None
    reason: str = ""

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def _blocks(page: Path) -> list[Block]:
    lines = page.read_text().split("\n")
    out, i = [], 0
    while i < len(lines):
        fence = re.match(r"^(`{3,})(\w*)", lines[i])
        if not fence:
            i += 1
            continue
        start, lang = i, fence.group(2).lower()
        i += 1
        body = []
        while i < len(lines) and not lines[i].startswith(fence.group(1)):
            body.append(lines[i])
            i += 1
        i += 1
        prev = next((x for x in reversed(lines[:start]) if x.strip()), "")
        m = MARKER.search(prev)
        marker, reason = None, ""
        if m and m.group(1).startswith("test"):
            marker = "test" + (f": {m.group(2)}" if m.group(2) else "")
        elif m:
            marker, reason = "not run", m.group(3).strip()
        out.append(Block(page, start + 1, lang, "\n".join(body) + "\n", marker, reason))
    return out


BLOCKS = [b for page in PAGES for b in _blocks(page)]


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = heading.strip().lower().replace("`", "")
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    fenced, out = False, set()
    for line in page.read_text().split("\n"):
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (m := re.match(r"^#{1,6} (.*)", line)):
            out.add(_slug(m.group(1)))
    return out


def test_the_pages_are_the_documented_ones():
    names = sorted(p.name for p in (ROOT / "docs").glob("*.md"))
    assert names == [
        "catalogue.md",
        "cli.md",
        "configuration.md",
        "development.md",
        "guide.md",
        "performance.md",
        "reading.md",
    ]


@pytest.mark.parametrize("page", LINKED, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    broken = []
    fenced = False
    for number, line in enumerate(page.read_text().split("\n"), 1):
        if line.startswith("```"):
            fenced = not fenced
        if fenced:
            continue
        for target in LINK.findall(line):
            if re.match(r"^[a-z]+:", target):
                continue  # https:, mailto:
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                broken.append(f"{number}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                broken.append(f"{number}: {target} (no such heading)")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_every_page_is_reachable_from_the_readme():
    readme = (ROOT / "README.md").read_text()
    targets = {(ROOT / t.partition("#")[0]).resolve() for t in LINK.findall(readme)}
    missing = [p.name for p in PAGES[1:] if p.resolve() not in targets]
    assert not missing, f"README.md links none of: {missing}"


def test_every_example_is_run_or_says_why_not():
    unmarked = [b.id for b in BLOCKS if b.lang in RUNNABLE and b.marker is None]
    assert not unmarked, (
        "mark these blocks <!-- test --> or <!-- not run: REASON -->: "
        + ", ".join(unmarked)
    )
    no_reason = [b.id for b in BLOCKS if b.marker == "not run" and not b.reason]
    assert not no_reason, f"a not-run block must say why: {no_reason}"
    assert [b for b in BLOCKS if b.marker == "test" and b.lang in RUNNABLE]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """What a user has after `bash scripts/example.sh`: example/ and results/."""
    from biocodes.example import make_example

    home = tmp_path_factory.mktemp("user")
    make_example(home / "example")
    build_catalogue({"example": home / "example"}, home / "results")
    (home / ".venv").symlink_to(ROOT / ".venv")
    return home


def _run(block: Block, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    if block.lang == "python":
        cmd = [sys.executable, "-c", block.code]
    else:
        cmd = ["bash", "-e", "-c", block.code]
    return subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


RUN = [b for b in BLOCKS if b.marker == "test" and b.lang in RUNNABLE]


@pytest.mark.parametrize("block", RUN, ids=lambda b: b.id)
def test_example_runs(block, workspace):
    proc = _run(block, workspace)
    assert proc.returncode == 0, (
        f"{block.id} exited {proc.returncode}\n{block.code}\n"
        f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    )
    assert "Traceback" not in proc.stderr


def _merged(user: dict) -> dict:
    """config/config.yaml with ``user`` merged over it, as Snakemake does
    (mappings key by key)."""

    def merge(base: dict, over: dict) -> dict:
        out = dict(base)
        for key, value in over.items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = merge(out[key], value)
            else:
                out[key] = value
        return out

    base = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    return merge(base, user)


CONFIGS = [b for b in BLOCKS if b.marker == "test: config"]


@pytest.mark.parametrize("block", CONFIGS, ids=lambda b: b.id)
def test_config_example_is_valid(block):
    from biocodes.repository.config import check_config

    assert block.lang == "yaml"
    check_config(
        _merged(yaml.safe_load(block.code)),
        ROOT / "workflow" / "schemas" / "config.schema.yaml",
    )


def test_anchors_are_githubs():
    assert _slug("Remote OME-Zarr (S3 and HTTP)") == "remote-ome-zarr-s3-and-http"
    assert _slug("Bio-Formats (optional, offline)") == "bio-formats-optional-offline"
    assert "running-on-slurm" in _anchors(ROOT / "docs" / "guide.md")
    assert "no-such-heading" not in _anchors(ROOT / "docs" / "guide.md")
