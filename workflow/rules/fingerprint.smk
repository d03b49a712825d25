rule fingerprint:
    input:
        f"{RESULTS}/manifest.parquet",
    output:
        tables=directory(f"{RESULTS}/shards/{{shard}}"),
        thumbnails=directory(f"{RESULTS}/thumbnails/{{shard}}"),
    log:
        f"{RESULTS}/logs/fingerprint/{{shard}}.log",
    conda:
        "../../envs/biocodes.yaml"
    threads: config["threads"]
    resources:
        mem_mb=config["mem_mb"],
    params:
        shard=lambda wc: int(wc.shard),
        cluster=config["cluster"],
        simprints=config["simprints"],
        views=config["views"],
    script:
        "../scripts/fingerprint.py"
