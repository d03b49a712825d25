# One job per shard. Its tables live in <results>/state/<shard> across runs
# (swapped in atomically); the declared output is the job's counts.
rule fingerprint:
    input:
        f"{RESULTS}/manifest.parquet",
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
        cluster=config["cluster"],
        simprints=config["simprints"],
        views=config["views"],
        recheck=config["incremental"].get("recheck", False),
        limits=config["limits"],
        shards=len(SHARDS),
        catalogue=f"{RESULTS}/catalogue",
        plates=config["plates"],
    script:
        "../scripts/fingerprint.py"
