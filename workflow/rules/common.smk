# Input functions and config handling. The manifest is never loaded here:
# every SLURM job re-parses this file.
import os
from pathlib import Path

from snakemake.utils import validate

from biocodes.layout import shard_count

validate(config, schema="../schemas/config.schema.yaml")

RESULTS = config["results"]
# written by the merge, retired by a successful run: see catalogue.smk
RUN_STAMP = f"{RESULTS}/run.json"
# a fixed `shards`, or a power of two following the last run's image count
SHARDS = list(
    range(shard_count(RESULTS, config.get("shards"), config["images_per_shard"]))
)


def _roots():
    """The roots to scan. The example's root only counts when it is generated:
    a user's --configfile is merged into config/config.yaml, so its `roots`
    come on top of the example's."""
    example = config.get("example") or {}
    generated = example.get("generate", False)
    roots = {
        label: root
        for label, root in config["roots"].items()
        if generated or label != example.get("root")
    }
    if not roots:
        raise WorkflowError("config: no roots to scan")
    for label, root in roots.items():
        remote = root.split("://", 1)[0].lower() in ("s3", "http", "https")
        if label != example.get("root") and not remote and not os.path.isdir(root):
            raise WorkflowError(
                f"config: roots.{label}: {root!r} is not a directory or a "
                "s3://, http:// or https:// URL"
            )
    return roots


ROOTS = _roots()


def example_marker():
    """The generated example repository, when the config asks for it."""
    if config.get("example") and config["example"].get("generate", False):
        return [f"{RESULTS}/example.done"]
    return []


def finish_run():
    """Print the run's summary, record the repository's size (the next
    run's shard count) and retire the stamp: the next invocation (e.g.
    tomorrow night) scans again and is a new run."""
    import json

    from biocodes.catalogue import summary
    from biocodes.layout import record_images

    if os.path.exists(RUN_STAMP):
        print(summary(f"{RESULTS}/catalogue"))
        record_images(RESULTS, json.loads(Path(RUN_STAMP).read_text())["images"])
        os.remove(RUN_STAMP)
