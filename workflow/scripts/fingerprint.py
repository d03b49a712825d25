import json
import sys
from pathlib import Path

from biocodes.infra.atomic import atomic_path
from biocodes.infra.limits import Limits
from biocodes.repository.catalogue import run_info
from biocodes.repository.shard import part_shards, run_shard
from biocodes.views.build import view_options


def main(smk) -> None:
    sys.stderr = open(smk.log[0], "w")
    thumbnails = smk.params.thumbnails
    run_id, _started = run_info(smk.input.manifest)
    counts = run_shard(
        smk.input.part,
        smk.params.shard,
        smk.params.state,
        smk.params.cluster,
        smk.params.simprints,
        threads=smk.threads,
        views=view_options(smk.params.views, thumbnails),
        results_dir=str(Path(thumbnails).parent),
        recheck=smk.params.recheck,
        limits=Limits.from_config(smk.params.limits),
        shards=part_shards(smk.input.part),
        catalogue=smk.params.catalogue,
        plate_fields_per_task=smk.params.plates.get("fields_per_task", 64),
        run_id=run_id,
    )
    print(f"shard {smk.params.shard}: {counts}", file=sys.stderr)
    with atomic_path(smk.output[0]) as tmp:
        # the run id tells the merge these counts are this run's (a quiet
        # shard's job does not run, and its file keeps an older run's)
        tmp.write_text(json.dumps({**counts, "run_id": run_id}))


# dask's worker processes re-import this file as __mp_main__: run only once
if __name__ == "__main__":
    main(snakemake)
