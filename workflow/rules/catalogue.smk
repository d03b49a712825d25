rule catalogue:
    input:
        manifest=f"{RESULTS}/manifest.parquet",
        shards=expand(f"{RESULTS}/shards/{{shard}}", shard=SHARDS),
    output:
        catalogue_tables(),
    log:
        f"{RESULTS}/logs/catalogue.log",
    conda:
        "../../envs/biocodes.yaml"
    params:
        out_dir=lambda wc, output: os.path.dirname(output[0]),
        config=config,
    script:
        "../scripts/catalogue.py"
