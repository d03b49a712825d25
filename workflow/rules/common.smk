# Input functions and config handling. The manifest is never loaded here:
# every SLURM job re-parses this file.
import os
from pathlib import Path

from snakemake.utils import validate

validate(config, schema="../schemas/config.schema.yaml")

RESULTS = config["results"]
# written by the merge, retired by a successful run: see catalogue.smk
RUN_STAMP = f"{RESULTS}/run.json"
SHARDS = list(range(config["shards"]))


def _check_roots():
    example = config.get("example") and config["example"].get("root")
    for label, root in config["roots"].items():
        if label != example and not os.path.isdir(root):
            raise WorkflowError(f"config: roots.{label}: {root!r} is not a directory")


_check_roots()


def example_marker():
    """The generated example repository, when the config asks for it."""
    if config.get("example") and config["example"].get("generate", False):
        return [f"{RESULTS}/example.done"]
    return []


def finish_run():
    """Print the run's summary and retire its stamp: the next invocation
    (e.g. tomorrow night) scans again and is a new run."""
    from biocodes.catalogue import summary

    if os.path.exists(RUN_STAMP):
        print(summary(f"{RESULTS}/catalogue"))
        os.remove(RUN_STAMP)
