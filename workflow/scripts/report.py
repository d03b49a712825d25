import sys

sys.stderr = open(snakemake.log[0], "w")

from biocodes.repository.report import write_report

write_report(
    snakemake.params.catalogue,
    snakemake.output[0],
    max_scenes=snakemake.params.max_scenes,
)
