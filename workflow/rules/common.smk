# Paths and helper functions shared by the rules (no project code is imported here).

import os
import sys

# Rules call `dnalm`: the one installed beside the Python that runs Snakemake is found too, so that
# `.venv/bin/snakemake` works without activating the venv (an activated environment still comes first).
_BIN = os.path.dirname(sys.executable)
if os.path.exists(os.path.join(_BIN, "dnalm")):
    shell.prefix(f'set -euo pipefail; export PATH="$PATH:{_BIN}"; ')

GENOME_NAME = config["genome"]["name"]
GENOME_DIR = "results/genome"
GENOME_FASTA = f"{GENOME_DIR}/{GENOME_NAME}.fa.gz"
TASKS_DIR = "results/tasks"
OWN_MODEL_DIR = "results/pretrain/model"  # this run's pretraining
OWN_MODEL = f"{OWN_MODEL_DIR}/model.safetensors"
CHECKPOINT = config["pretrain"].get("checkpoint", "")  # a shipped model folder the downstream stages start from
MODEL_DIR = CHECKPOINT or OWN_MODEL_DIR  # the model of the downstream stages


def _checkpoint_genomes(folder):
    """Names of the genomes a model folder was pretrained on (from its config.json record; [] if unknown)."""
    import json

    try:
        with open(os.path.join(folder, "config.json")) as fh:
            record = (json.load(fh).get("extra") or {}).get("pretrain") or {}
    except (OSError, ValueError):
        return []
    return [os.path.basename(str(g)).split(".")[0] for g in record.get("genomes", [])]


if CHECKPOINT:
    _trained_on = _checkpoint_genomes(CHECKPOINT)
    if _trained_on and GENOME_NAME not in _trained_on:
        raise ValueError(
            f"pretrain.checkpoint {CHECKPOINT} was pretrained on {', '.join(_trained_on)}, not on the pipeline genome "
            f"{GENOME_NAME}: set pretrain.checkpoint: '' (use this run's pretraining) or a checkpoint of this genome")
MODEL = f"{MODEL_DIR}/model.safetensors"
# torch CPU threads of each model-running job (config key `threads`). With 1 on a 2-core machine Snakemake runs two
# jobs side by side, which is faster than one job with two threads (small models: two threads mostly wait).
THREADS = int(config.get("threads", 1))
CRE_DIR = "results/cre"
PROPS = config["cre"]["property_columns"]


def sets(values, flag="--set"):
    """Render a list of key=value overrides as repeated command-line options."""
    return " ".join(f"{flag} '{v}'" for v in values)


def genome_input():
    """The file prepare_genome reads: none for the demo, the user's file, or the download."""
    src = config["genome"]["source"]
    if src == "file":
        return config["genome"]["path"]
    if src == "url":
        return f"results/download/{GENOME_NAME}.input"
    return []


def variant_sets():
    """name -> VCF path of the variant sets to score."""
    vcfs = dict(config["variants"].get("vcfs", {}))
    if not vcfs and config["tasks"].get("derive", True):
        vcfs["coding_snvs"] = f"{TASKS_DIR}/variants/coding_snvs.vcf.gz"
    return vcfs


def variant_regions(wildcards):
    """[annotation] labelling the regions of VCF {name} for variant-summary (variants.regions), else []."""
    regions = config["variants"].get("regions", {})
    unknown = sorted(set(regions) - set(variant_sets()))
    if unknown:
        raise ValueError(f"variants.regions names {', '.join(unknown)}, which variants.vcfs does not")
    return [regions[wildcards.name]] if wildcards.name in regions else []


def variant_fasta():
    return config["variants"].get("fasta") or GENOME_FASTA


def cre_table():
    return config["cre"].get("table") or f"{TASKS_DIR}/cre/promoters.tsv"


def benchmark_task_inputs():
    """The derived promoter task when the benchmark runs on derived tasks (no data folder configured)."""
    return [] if config["benchmark"].get("data") else [f"{TASKS_DIR}/promoters/train.csv"]


def benchmark_threads():
    """Cores of the benchmark job: its worker processes (one torch thread each) when its settings ask for workers > 1
    (config/benchmark/gue_prom.yaml does), else the config's threads. Read by the benchmark's own loader."""
    from finetune.benchmark import BenchmarkConfig, benchmark_overrides

    sets = benchmark_overrides(config["benchmark"].get("set", []))
    settings = BenchmarkConfig.load(config["benchmark"]["config"], sets)
    return settings.workers if settings.workers > 1 else THREADS


def benchmark_data(wildcards, input):
    if config["benchmark"].get("data"):
        return config["benchmark"]["data"]
    return os.path.dirname(os.path.dirname(input.tasks[0]))


def oracle_split_option():
    """--split-column of train-oracle: the configured column, "split" (by chromosome) for the derived table."""
    col = config["cre"].get("split_column", "")
    if not col and not config["cre"].get("table") and config["tasks"].get("derive", True):
        col = "split"
    return f"--split-column {col}" if col else ""


def cre_conditions():
    """The requested conditions: the configured ones, else the lowest and highest bin of the first property."""
    conds = config["cre"].get("conditions") or []
    if conds:
        return conds
    edges = config["cre"].get("edges") or {}
    bins = len(edges[PROPS[0]]) + 1 if PROPS[0] in edges else config["cre"]["bins"]
    return [f"{PROPS[0]}=0", f"{PROPS[0]}={bins - 1}"]


def edges_args():
    edges = config["cre"].get("edges") or {}
    return " ".join(f"--edges {k}={','.join(str(v) for v in vals)}" for k, vals in edges.items() if k in PROPS)


def explain_task():
    """The benchmark task whose fine-tuned model is explained (default: the first configured task)."""
    return config["explain"]["task"] or (config["benchmark"]["tasks"] or ["promoters"])[0]


def explain_model(wildcards, input):
    return f"results/benchmark/{explain_task()}/finetune_{config['explain']['pooling']}/model"


def explain_test_table():
    """The test table of the explained task: the configured one, else the derived promoter task's."""
    return config["explain"]["test"] or f"{TASKS_DIR}/{explain_task()}/test.csv"


def explain_motifs():
    """Motif database for discovered patterns: explain.motifs, else cre.motifs, else none (no matching)."""
    path = config["explain"]["motifs"] or config["cre"].get("motifs") or ""
    return [path] if path else []


def report_sections(wildcards, input):
    """--section options of dnalm report for free-form sections after the stage sections of --results."""
    sections = [
        ("Attributions and discovered motifs (fine-tuned promoter head, test promoters)", input.explain),
    ]
    return " ".join(f"--section '{title}={','.join(files)}'" for title, files in sections)
