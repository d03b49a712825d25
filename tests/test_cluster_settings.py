"""SLURM logs go under results/logs, never into the checkout: the dask
worker jobs' (cluster.slurm.log_directory unset) and Snakemake's own jobs'
(the slurm profile's slurm-logdir). The settings only: no job is submitted."""

from pathlib import Path

import yaml

from biocodes.repository.cluster import _slurm_cluster, with_log_directory

ROOT = Path(__file__).resolve().parents[1]


def test_worker_job_logs_default_to_results_logs(tmp_path):
    results = str(tmp_path / "results")
    cfg = {"kind": "slurm", "slurm": {"cores": 2}}
    got = with_log_directory(cfg, results)
    assert got["slurm"] == {"cores": 2, "log_directory": f"{results}/logs/slurm"}
    assert "log_directory" not in cfg["slurm"]  # the config is not changed
    mine = {"kind": "slurm", "slurm": {"log_directory": "/elsewhere"}}
    assert with_log_directory(mine, results)["slurm"]["log_directory"] == "/elsewhere"
    assert with_log_directory({"kind": "local"}, results)["kind"] == "local"
    cluster = _slurm_cluster(with_log_directory(cfg, results)["slurm"])
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert f"#SBATCH -e {results}/logs/slurm/" in script
    assert f"#SBATCH -o {results}/logs/slurm/" in script


def test_snakemake_slurm_job_logs_go_under_results_logs():
    profile = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    assert profile["slurm-logdir"] == "results/logs/snakemake-slurm"
    rule = (ROOT / "workflow" / "rules" / "fingerprint.smk").read_text()
    assert 'with_log_directory(config["cluster"]' in rule
