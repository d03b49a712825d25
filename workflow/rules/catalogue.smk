rule catalogue:
    input:
        manifest=f"{RESULTS}/manifest.parquet",
        shards=expand(f"{RESULTS}/shards/{{shard}}", shard=SHARDS),
    output:
        catalogue_tables(),
    log:
        f"{RESULTS}/logs/catalogue.log",
    params:
        out_dir=f"{RESULTS}/catalogue",
        config=config,
    script:
        "../scripts/catalogue.py"
