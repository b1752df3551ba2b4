# dnalm pipeline: genome -> pretraining -> LM evaluation -> fine-tuning benchmarks -> variant scoring ->
# CRE generator fine-tuning -> generation -> oracle + CRE evaluation -> report.
#
#   snakemake --cores 2                          # the embedded yeast demo (config/config.yaml)
#   snakemake --cores 2 --configfile config/shared_data.yaml    # real data from ../shared/data
#
# Every rule calls the `dnalm` command line; this file imports no project code.

from snakemake.utils import min_version, validate

min_version("8.0")


configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/genome.smk"
include: "workflow/rules/pretrain.smk"
include: "workflow/rules/benchmark.smk"
include: "workflow/rules/variants.smk"
include: "workflow/rules/cre.smk"
include: "workflow/rules/explain.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        "results/report.md",
