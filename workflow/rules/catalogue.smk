# The catalogue (<results>/catalogue, a symlink swapped in one step) is not a
# declared output, so Snakemake never deletes it before a merge: the previous
# catalogue stays readable until the new one is complete. Its declared output
# is a stamp that the end of a successful run retires (onsuccess), so the
# next invocation is a new run, while an interrupted run resumes where it was.
# The same job writes the morning report: one Python start-up less a night.
# update(): the previous report stays in place (and is restored if the job
# fails) until the new one is renamed over it.
rule catalogue:
    input:
        manifest=f"{RESULTS}/manifest.parquet",
        counts=shard_counts,
    output:
        stamp=RUN_STAMP,
        report=update(f"{RESULTS}/report.html"),
    log:
        f"{RESULTS}/logs/catalogue.log",
    conda:
        "../../envs/biocodes.yaml"
    threads: config["threads"]
    params:
        catalogue=f"{RESULTS}/catalogue",
        states=f"{RESULTS}/state",
        parts=f"{RESULTS}/manifest_parts",
        config=config,
        max_scenes=config["report"].get("max_scenes", 500),
    script:
        "../scripts/catalogue.py"
