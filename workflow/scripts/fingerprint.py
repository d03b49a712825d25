import sys
from pathlib import Path

from biocodes.shard import run_shard, view_options


def main(smk) -> None:
    sys.stderr = open(smk.log[0], "w")
    Path(smk.output.thumbnails).mkdir(parents=True, exist_ok=True)
    counts = run_shard(
        smk.input[0],
        smk.params.shard,
        smk.output.tables,
        smk.params.cluster,
        smk.params.simprints,
        threads=smk.threads,
        views=view_options(smk.params.views, smk.output.thumbnails),
        # thumbnails/<shard> sits in the results directory
        results_dir=str(Path(smk.output.thumbnails).parent.parent),
    )
    print(f"shard {smk.params.shard}: {counts}", file=sys.stderr)


# dask's worker processes re-import this file as __mp_main__: run only once
if __name__ == "__main__":
    main(snakemake)
