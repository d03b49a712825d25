rule report:
    input:
        RUN_STAMP,
    output:
        f"{RESULTS}/report.html",
    log:
        f"{RESULTS}/logs/report.log",
    conda:
        "../../envs/biocodes.yaml"
    params:
        catalogue=f"{RESULTS}/catalogue",
        max_scenes=config["report"].get("max_scenes", 500),
    script:
        "../scripts/report.py"
