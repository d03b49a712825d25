"""Security: no shell built from names, no code or pickles from a scanned
repository, and no credential in what a run writes."""

from __future__ import annotations

import ast
from pathlib import Path

from biocodes.repository.catalogue import redact

ROOT = Path(__file__).resolve().parents[1]
CODE = [
    *ROOT.glob("src/biocodes/**/*.py"),
    *ROOT.glob("workflow/scripts/*.py"),
]
RULES = [ROOT / "Snakefile", *ROOT.glob("workflow/rules/*.smk")]


def calls(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            yield ast.unparse(node.func), node


def test_no_shell_commands_anywhere_in_the_workflow_or_library():
    for rule in RULES:  # every rule runs a script: no shell: and no run: blocks
        for line in rule.read_text().splitlines():
            assert not line.strip().startswith(("shell:", "run:")), (rule, line)
    for path in CODE:
        for name, node in calls(path):
            assert name not in {"os.system", "os.popen", "eval", "exec"}, (path, name)
            if name.startswith("subprocess."):
                shell = [k for k in node.keywords if k.arg == "shell"]
                assert not shell, (path, ast.unparse(node))
                assert isinstance(node.args[0], ast.List), (path, ast.unparse(node))


def test_nothing_unpickles_or_evaluates_what_it_reads():
    for path in CODE:
        for name, node in calls(path):
            assert "pickle" not in name and "marshal" not in name, (path, name)
            assert name not in {"yaml.load", "yaml.unsafe_load"}, (path, name)
            if name in {"np.load", "numpy.load"}:
                allow = [k for k in node.keywords if k.arg == "allow_pickle"]
                assert not allow, (path, ast.unparse(node))


def test_recorded_config_never_holds_a_credential():
    config = {
        "roots": {"lab": "/data/lab"},
        "cluster": {"slurm": {"account": "lab-account"}},
        "storage": {
            "password": "hunter2",
            "aws_secret_access_key": "AKIA-SECRET",
            "token": "t0k3n",
        },
        "manifest": "https://alice:hunter2@example.org/list.csv",
    }
    text = str(redact(config))
    for secret in ("hunter2", "AKIA-SECRET", "t0k3n"):
        assert secret not in text
    assert "lab-account" in text  # a SLURM account is not a secret
    assert "https://alice:<redacted>@example.org/list.csv" in text
