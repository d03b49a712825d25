# Input functions and config handling. The manifest is never loaded here:
# every SLURM job re-parses this file.
import os
from pathlib import Path

from snakemake.utils import validate

validate(config, schema="../schemas/config.schema.yaml")

RESULTS = config["results"]
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


def catalogue_tables():
    return expand(
        f"{RESULTS}/catalogue/{{table}}.parquet",
        table=["images", "scenes", "simprints", "views", "errors", "runs"],
    )


def print_summary():
    from biocodes.catalogue import summary

    print(summary(f"{RESULTS}/catalogue"))
