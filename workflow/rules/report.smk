rule report:
    input:
        tables=catalogue_tables(),
        thumbnails=expand(f"{RESULTS}/thumbnails/{{shard}}", shard=SHARDS),
    output:
        f"{RESULTS}/report.html",
    log:
        f"{RESULTS}/logs/report.log",
    conda:
        "../../envs/biocodes.yaml"
    params:
        max_scenes=config["report"]["max_scenes"],
    script:
        "../scripts/report.py"
