import json
import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w")

from biocodes.infra.atomic import atomic_path
from biocodes.repository.catalogue import merge_run, summary
from biocodes.repository.report import write_report
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
# the run's summary rides in the stamp: onsuccess prints it without pyarrow
stamp = {**run, "summary": summary(snakemake.params.catalogue)}
with atomic_path(snakemake.output.stamp) as tmp:
    tmp.write_text(json.dumps(stamp, indent=1, default=str))
write_report(
    snakemake.params.catalogue,
    snakemake.output.report,
    max_scenes=snakemake.params.max_scenes,
)
print(f"report: {snakemake.output.report}", file=sys.stderr)
