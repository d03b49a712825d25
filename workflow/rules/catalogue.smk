# The catalogue (<results>/catalogue, a symlink swapped in one step) is not a
# declared output, so Snakemake never deletes it before a merge: the previous
# catalogue stays readable until the new one is complete. Its declared output
# is a stamp that the end of a successful run retires (onsuccess), so the
# next invocation is a new run, while an interrupted run resumes where it was.
rule catalogue:
    input:
        manifest=f"{RESULTS}/manifest.parquet",
        counts=expand(f"{RESULTS}/shards/{{shard}}.json", shard=SHARDS),
    output:
        RUN_STAMP,
    log:
        f"{RESULTS}/logs/catalogue.log",
    conda:
        "../../envs/biocodes.yaml"
    params:
        catalogue=f"{RESULTS}/catalogue",
        states=expand(f"{RESULTS}/state/{{shard}}", shard=SHARDS),
        config=config,
    script:
        "../scripts/catalogue.py"
