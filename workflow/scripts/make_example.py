import sys

sys.stderr = open(snakemake.log[0], "w")

from biocodes.example import make_example

for path in make_example(snakemake.params.root):
    print(path, file=sys.stderr)
