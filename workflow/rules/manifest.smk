# The scan starts every run: its manifest is temporary, so each invocation
# (e.g. nightly) re-scans the roots. Shard jobs then read pixels only for
# images that changed (see README, "Nightly runs").
rule manifest:
    input:
        example_marker(),
    output:
        temp(f"{RESULTS}/manifest.parquet"),
    log:
        f"{RESULTS}/logs/manifest.log",
    conda:
        "../../envs/biocodes.yaml"
    params:
        roots=ROOTS,
        manifest_file=config.get("manifest"),
        include=config["include"],
        exclude=config["exclude"],
        shards=len(SHARDS),
        follow_symlinks=config["follow_symlinks"],
        limits=config["limits"],
    script:
        "../scripts/manifest.py"
