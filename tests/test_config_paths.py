"""Config mistakes a user makes, each refused in one line in their terms:
``~`` and environment variables expanded in paths, overlapping roots and a
results folder inside a root refused, a list for roots, a config file that
is not there."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from biocodes.repository.config import ConfigError, settle_results, settle_roots

ROOT = Path(__file__).resolve().parents[1]


def user(roots, results):
    return {"roots": roots, "results": results, "example": {"root": "example"}}


def settle(cfg, workdir):
    """As Snakemake gives them: the user's roots replace the example's."""
    return settle_roots(cfg, {"roots": cfg["roots"]}, workdir)


def test_home_and_environment_variables_are_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("LABDATA", str(tmp_path / "data"))
    (tmp_path / "lab").mkdir()
    (tmp_path / "data" / "b").mkdir(parents=True)
    cfg = user({"a": "~/lab", "b": "${LABDATA}/b"}, "~/out")
    assert settle_results(cfg) == str(tmp_path / "out")
    roots = settle(cfg, tmp_path)
    assert roots == {"a": str(tmp_path / "lab"), "b": str(tmp_path / "data" / "b")}
    monkeypatch.delenv("LABDATA")
    with pytest.raises(ConfigError, match="environment variable LABDATA, which is"):
        settle(user({"b": "$LABDATA/b"}, "out"), tmp_path)


def test_overlapping_roots_and_results_inside_a_root_are_refused(tmp_path):
    (tmp_path / "repo" / "lab1").mkdir(parents=True)
    cfg = user({"all": "repo", "lab1": "repo/lab1"}, str(tmp_path / "results"))
    with pytest.raises(ConfigError) as err:
        settle(cfg, tmp_path)
    line = str(err.value)
    assert "roots.lab1" in line and "roots.all" in line and "twice" in line
    assert "\n" not in line
    cfg = user({"all": "repo"}, "repo/results")
    with pytest.raises(ConfigError, match=r"results \(.*repo/results\) lies inside"):
        settle(cfg, tmp_path)


def snakemake(tmp_path, config):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(config))
    return subprocess.run(
        [Path(sys.executable).parent / "snakemake", "--configfile", cfg, "-n"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_config_errors_are_one_line_without_a_traceback(tmp_path):
    proc = snakemake(tmp_path, {"roots": ["/data"], "results": str(tmp_path / "r")})
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "roots must name each directory with a label" in out
    assert "Traceback" not in out and "WorkflowError" not in out
    assert "common.smk" not in out and "not of type" not in out
    (tmp_path / "repo" / "x").mkdir(parents=True)
    roots = {"all": str(tmp_path / "repo"), "x": str(tmp_path / "repo" / "x")}
    proc = snakemake(tmp_path, {"roots": roots, "results": str(tmp_path / "r")})
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "roots.x" in out and "common.smk" not in out


def test_example_script_takes_a_config_file_from_where_the_user_stands(tmp_path):
    script = ROOT / "scripts" / "example.sh"
    proc = subprocess.run(
        ["bash", script, "--configfile", "missing.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"example.sh: config file 'missing.yaml' not found (from {tmp_path})"
    ]
    assert os.path.exists(script)
