import sys

from biocodes.shard import run_shard


def main(smk) -> None:
    sys.stderr = open(smk.log[0], "w")
    counts = run_shard(
        smk.input[0],
        smk.params.shard,
        smk.output[0],
        smk.params.cluster,
        smk.params.simprints,
        threads=smk.threads,
    )
    print(f"shard {smk.params.shard}: {counts}", file=sys.stderr)


# dask's worker processes re-import this file as __mp_main__: run only once
if __name__ == "__main__":
    main(snakemake)
