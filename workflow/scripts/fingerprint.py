import json
import sys
from pathlib import Path

from biocodes.infra.atomic import atomic_path
from biocodes.infra.limits import Limits
from biocodes.repository.shard import run_shard
from biocodes.views.build import view_options


def main(smk) -> None:
    sys.stderr = open(smk.log[0], "w")
    thumbnails = smk.params.thumbnails
    counts = run_shard(
        smk.input[0],
        smk.params.shard,
        smk.params.state,
        smk.params.cluster,
        smk.params.simprints,
        threads=smk.threads,
        views=view_options(smk.params.views, thumbnails),
        results_dir=str(Path(thumbnails).parent),
        recheck=smk.params.recheck,
        limits=Limits.from_config(smk.params.limits),
        shards=smk.params.shards,
        catalogue=smk.params.catalogue,
        plate_fields_per_task=smk.params.plates.get("fields_per_task", 64),
    )
    print(f"shard {smk.params.shard}: {counts}", file=sys.stderr)
    with atomic_path(smk.output[0]) as tmp:
        tmp.write_text(json.dumps(counts))


# dask's worker processes re-import this file as __mp_main__: run only once
if __name__ == "__main__":
    main(snakemake)
