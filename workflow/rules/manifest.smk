# The scan starts every run: its manifest is temporary, so each invocation
# (e.g. nightly) re-scans the roots. It is a checkpoint: it also writes each
# shard's part of the manifest (<results>/manifest_parts/<shard>.parquet), but
# only for shards with something to do, and Snakemake looks at those dates
# once the scan is done, so the job of a quiet shard does not run (see
# docs/guide.md, "Nightly runs").
checkpoint manifest:
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
        shards=config.get("shards"),
        images_per_shard=config["images_per_shard"],
        layout=f"{RESULTS}/layout.json",
        follow_symlinks=config["follow_symlinks"],
        limits=config["limits"],
        parts=f"{RESULTS}/manifest_parts",
        states=f"{RESULTS}/state",
        simprints=config["simprints"],
        views=config["views"],
        thumbnails=f"{RESULTS}/thumbnails",
        recheck=config["incremental"].get("recheck", False),
        settle=config["incremental"].get("settle_seconds"),
        # the example is generated just before it is read: no settle time
        settle_exempt=[config["example"]["root"]] if example_marker() else [],
    script:
        "../scripts/manifest.py"
