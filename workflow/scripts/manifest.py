import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w")

from biocodes.repository.config import without_pandas

without_pandas()  # ~0.4 s of imports this job has no use for

from biocodes.infra.limits import Limits
from biocodes.repository.catalogue import skipped_files
from biocodes.repository.layout import decide_shards, previous_shards, record_shards
from biocodes.repository.manifest import (
    build_manifest,
    describe_skipped,
    manifest_shards,
    plain_files,
    settle_seconds,
)
from biocodes.repository.shard import write_shard_manifests
from biocodes.views.build import view_options

p = snakemake.params
results = Path(p.layout).parent  # the scan's decision is recorded there
previous = previous_shards(results)
rows = build_manifest(
    snakemake.output[0],
    p.roots,
    # decided from this scan, the last count kept while it fits
    lambda images: decide_shards(images, previous, p.shards, p.images_per_shard),
    p.include,
    p.exclude,
    p.manifest_file,
    p.follow_symlinks,
    Limits.from_config(p.limits),
    settle_seconds({"settle_seconds": p.settle}),
    p.settle_exempt,
    # the files the last scan found on their own: not opened again if their
    # size and mtime are the same (recheck: every file is looked at)
    plain=() if p.recheck else plain_files(p.parts),
)
shards = manifest_shards(snakemake.output[0])
record_shards(results, shards, rows)
print(
    f"manifest: {rows} image{'' if rows == 1 else 's'} in {shards} "
    f"shard{'' if shards == 1 else 's'}",
    file=sys.stderr,
)
print(describe_skipped(skipped_files(snakemake.output[0])), file=sys.stderr)
written = write_shard_manifests(
    snakemake.output[0],
    p.parts,
    p.states,
    shards,
    p.simprints,
    view_options(p.views, p.thumbnails),
    recheck=p.recheck,
)
quiet = sorted(set(range(shards)) - set(written))
print(f"shards to run: {written}; quiet (not run): {quiet}", file=sys.stderr)
