rule make_example:
    output:
        touch(f"{RESULTS}/example.done"),
    log:
        f"{RESULTS}/logs/make_example.log",
    conda:
        "../../envs/biocodes.yaml"
    params:
        root=lambda wc: config["roots"][config["example"]["root"]],
    script:
        "../scripts/make_example.py"
