import sys

sys.stderr = open(snakemake.log[0], "w")

from biocodes.catalogue import merge_run

merge_run(
    snakemake.input.shards,
    snakemake.params.out_dir,
    snakemake.params.config,
    manifest=snakemake.input.manifest,
)
