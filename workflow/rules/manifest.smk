rule manifest:
    input:
        example_marker(),
    output:
        f"{RESULTS}/manifest.parquet",
    log:
        f"{RESULTS}/logs/manifest.log",
    conda:
        "../../envs/biocodes.yaml"
    params:
        roots=config["roots"],
        manifest_file=config.get("manifest"),
        include=config["include"],
        exclude=config["exclude"],
        shards=config["shards"],
    script:
        "../scripts/manifest.py"
