import json
import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w")

from biocodes.infra.atomic import atomic_path
from biocodes.repository.catalogue import merge_run
from biocodes.repository.shard import retire_states

counts = [json.loads(open(p).read()) for p in snakemake.input.counts]
run = merge_run(
    snakemake.params.states,
    snakemake.params.catalogue,
    snakemake.params.config,
    manifest=snakemake.input.manifest,
    counts=counts,
)
retire_states(Path(snakemake.params.states[0]).parent, len(snakemake.params.states))
with atomic_path(snakemake.output[0]) as tmp:
    tmp.write_text(json.dumps(run, indent=1, default=str))
