# biocodes: IMAGEWALK biocodes for a repository of images, into Parquet catalogues.
# Run: snakemake --profile profiles/default   (or profiles/slurm on a cluster)


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/example.smk"
include: "workflow/rules/manifest.smk"
include: "workflow/rules/fingerprint.smk"
include: "workflow/rules/catalogue.smk"


rule all:
    default_target: True
    input:
        RUN_STAMP,
        f"{RESULTS}/report.html",


onsuccess:
    finish_run()
