# Paths and small helpers shared by the rules (no project code is imported here).

GENOME_NAME = config["genome"]["name"]
GENOME_DIR = "results/genome"
GENOME_FASTA = f"{GENOME_DIR}/{GENOME_NAME}.fa.gz"
TASKS_DIR = "results/tasks"
MODEL_DIR = "results/pretrain/model"
MODEL = f"{MODEL_DIR}/model.safetensors"


def sets(values, flag="--set"):
    """Render a list of key=value overrides as repeated command-line options."""
    return " ".join(f"{flag} '{v}'" for v in values)


def variant_sets():
    """name -> VCF path of the variant sets to score."""
    vcfs = dict(config["variants"].get("vcfs", {}))
    if not vcfs and config["tasks"].get("derive", True):
        vcfs["coding_snvs"] = f"{TASKS_DIR}/variants/coding_snvs.vcf.gz"
    return vcfs


def variant_fasta():
    return config["variants"].get("fasta") or GENOME_FASTA


def cre_table():
    return config["cre"].get("table") or f"{TASKS_DIR}/cre/promoters.tsv"


def benchmark_data():
    suite = config["benchmark"]["suite"]
    if suite == "derived":
        return TASKS_DIR
    return config["benchmark"].get("data", "")
