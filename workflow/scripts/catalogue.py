import json
import sys

sys.stderr = open(snakemake.log[0], "w")

from biocodes.atomic import atomic_path
from biocodes.catalogue import merge_run

counts = [json.loads(open(p).read()) for p in snakemake.input.counts]
run = merge_run(
    snakemake.params.states,
    snakemake.params.catalogue,
    snakemake.params.config,
    manifest=snakemake.input.manifest,
    counts=counts,
)
with atomic_path(snakemake.output[0]) as tmp:
    tmp.write_text(json.dumps(run, indent=1, default=str))
