import json
import sys

sys.stderr = open(snakemake.log[0], "w")

from biocodes.repository.config import without_pandas

without_pandas()  # ~0.4 s of imports this job has no use for

from biocodes.infra.atomic import atomic_path
from biocodes.repository.catalogue import merge_run, run_info, summary
from biocodes.repository.report import write_report
from biocodes.repository.shard import counts_for_run, retire_states

run_id, _started = run_info(snakemake.input.manifest)
counts = [
    counts_for_run(json.loads(open(p).read()), run_id) for p in snakemake.input.counts
]
# one state per shard job of this run (the scan decided how many)
states = [f"{snakemake.params.states}/{k}" for k in range(len(snakemake.input.counts))]
run = merge_run(
    states,
    snakemake.params.catalogue,
    snakemake.params.config,
    manifest=snakemake.input.manifest,
    counts=counts,
    threads=snakemake.threads,
)
shards = len(states)
retire_states(snakemake.params.states, shards)
retire_states(snakemake.params.parts, shards)
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
