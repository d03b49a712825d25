# One job per shard. Its tables live in <results>/state/<shard> across runs
# (swapped in atomically); the declared output is the job's counts. It runs
# when the scan rewrote its part of the manifest (shard_manifest); the run's
# manifest gives the run id, and its date is no reason to run (ancient).
rule fingerprint:
    input:
        manifest=ancient(f"{RESULTS}/manifest.parquet"),
        part=shard_manifest,
    output:
        f"{RESULTS}/shards/{{shard}}.json",
    log:
        f"{RESULTS}/logs/fingerprint/{{shard}}.log",
    conda:
        "../../envs/biocodes.yaml"
    threads: config["threads"]
    resources:
        mem_mb=config["mem_mb"],
    params:
        shard=lambda wc: int(wc.shard),
        state=lambda wc: f"{RESULTS}/state/{wc.shard}",
        thumbnails=f"{RESULTS}/thumbnails",
        cluster=with_log_directory(config["cluster"], os.path.abspath(RESULTS)),
        simprints=config["simprints"],
        views=config["views"],
        recheck=config["incremental"].get("recheck", False),
        limits=config["limits"],
        catalogue=f"{RESULTS}/catalogue",
        plates=config["plates"],
    script:
        "../scripts/fingerprint.py"
