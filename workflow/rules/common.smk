# Input functions and config handling. The manifest is never loaded here:
# every SLURM job re-parses this file.
import os
import sys
from pathlib import Path

from snakemake.utils import validate

from biocodes.repository.config import (
    ConfigError,
    check_config,
    settle_results,
    settle_roots,
)
from biocodes.repository.cluster import with_log_directory
from biocodes.repository.layout import scan_shards


def _refuse(exc):
    """A config mistake: its one line, no traceback, exit status 1."""
    print(str(exc), file=sys.stderr)
    sys.exit(1)


# one line naming the key, not Snakemake's dump of the whole schema
try:
    check_config(config, Path(workflow.basedir, "workflow/schemas/config.schema.yaml"))
    validate(config, schema="../schemas/config.schema.yaml")  # fills in defaults
    RESULTS = settle_results(config)
except ConfigError as exc:
    _refuse(exc)
# written by the merge, retired by a successful run: see catalogue.smk
RUN_STAMP = f"{RESULTS}/run.json"


def shard_counts(wildcards):
    """Every shard job's counts, once the scan (a checkpoint) has decided the
    run's shard count (a fixed `shards`, or from this scan's images: see
    biocodes.repository.layout)."""
    checkpoints.manifest.get()
    return expand(f"{RESULTS}/shards/{{shard}}.json", shard=range(scan_shards(RESULTS)))


def _roots():
    """The roots to scan, absolute: the example's, or only the user's when
    their --configfile names roots (see biocodes.repository.config.settle_roots)."""
    try:
        return settle_roots(config, workflow.config_settings.overwrite_config)
    except ConfigError as exc:
        _refuse(exc)


ROOTS = _roots()


def example_marker():
    """The generated example repository, when the config asks for it."""
    if config.get("example") and config["example"].get("generate", False):
        return [f"{RESULTS}/example.done"]
    return []


def shard_manifest(wildcards):
    """The shard's part of the manifest, once the scan (a checkpoint) is
    done: it rewrites the part only for a shard with something to do, so
    the job of a quiet shard, whose output is newer, does not run."""
    checkpoints.manifest.get()
    return f"{RESULTS}/manifest_parts/{wildcards.shard}.parquet"


def finish_run():
    """Print the run's summary and retire the stamp: the next invocation
    (e.g. tomorrow night) scans again and is a new run. The summary comes
    with the stamp, so this (Snakemake's own process) imports no pyarrow."""
    import json

    if os.path.exists(RUN_STAMP):
        run = json.loads(Path(RUN_STAMP).read_text())
        if "summary" not in run:  # a stamp written before the summary rode in it
            from biocodes.repository.catalogue import summary

            run["summary"] = summary(f"{RESULTS}/catalogue")
        print(run["summary"])
        os.remove(RUN_STAMP)
    _cancel_rate_timers()


def _cancel_rate_timers():
    """Cancel the timers Snakemake's job-rate limiter left (one per
    scheduling pass, of its timespan, 1 s by default): they only wake a
    scheduler that is done now, and the interpreter would wait for the last
    one at exit, a second of every quiet night."""
    import threading

    for thread in threading.enumerate():
        if isinstance(thread, threading.Timer):
            thread.cancel()
