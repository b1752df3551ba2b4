"""The Snakemake workflow: lint, dry runs, config validation, and a tiny end-to-end run."""

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def workdir(tmp_path: Path) -> Path:
    """A copy of the workflow files, so runs do not touch the repository's results/."""
    for name in ("Snakefile", "workflow", "config", "checkpoints"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / name)
    return tmp_path


def run(args, cwd, timeout=600):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(SNAKEMAKE + args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def test_lint_is_clean(tmp_path):
    out = run(["--lint"], workdir(tmp_path))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Congratulations" in out.stdout + out.stderr


@pytest.mark.parametrize("configfile", [None, "config/shared_data.yaml", "config/tiny.yaml"])
def test_dry_run_plans_every_stage(tmp_path, configfile, shared_data):
    wd = workdir(tmp_path)
    shared = wd / "config" / "shared_data.yaml"  # its paths are relative to the repository: point them at the data
    shared.write_text(shared.read_text().replace("../shared/data", str(shared_data.resolve())))
    args = ["-n", "--cores", "2"] + (["--configfile", configfile] if configfile else [])
    out = run(args, wd)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    for rule in ("prepare_genome", "pretrain", "evaluate_lm", "benchmark", "score_variants", "finetune_generator",
                 "generate_cre", "train_oracle", "evaluate_cre", "report"):
        assert rule in text, rule
    # the demo's downstream stages start from the shipped checkpoint, which is scored beside this run's model; the
    # shared-data run uses it too (the same genome), the tiny config turns it off
    assert ("rule evaluate_checkpoint" in text) == (configfile != "config/tiny.yaml"), configfile


def test_shared_yeast_genome_is_the_demo_genome(demo_yeast_dir, yeast_fasta):
    """config/shared_data.yaml names the shared genome sacCer_R64 so that the shipped checkpoint (pretrained on the
    demo genome, never on chrXV/chrXVI) is accepted: that is honest only while the two are the same sequences."""
    import pysam
    import yaml

    shared_cfg = yaml.safe_load((ROOT / "config" / "shared_data.yaml").read_text())
    assert shared_cfg["genome"]["name"] == "sacCer_R64" and "checkpoint" not in shared_cfg.get("pretrain", {})
    with pysam.FastaFile(str(demo_yeast_dir / "sacCer_R64.fa.gz")) as demo, pysam.FastaFile(str(yeast_fasta)) as shared:
        assert demo.references == shared.references
        for name in demo.references:
            assert demo.fetch(name).upper() == shared.fetch(name).upper(), name


def test_a_checkpoint_of_another_genome_is_refused(tmp_path):
    wd = workdir(tmp_path)
    (wd / "other.yaml").write_text("genome: {source: file, path: my.fa.gz, name: mygenome}\n")
    out = run(["-n", "--cores", "1", "--configfile", "other.yaml"], wd)
    text = out.stdout + out.stderr
    assert out.returncode != 0 and "was pretrained on sacCer_R64, not on the pipeline genome mygenome" in text, text


@pytest.mark.parametrize(
    "bad, key",
    [
        ("variants:\n  windw: 10\n", "windw"),
        ("pretrain:\n  config: 3\n", "config"),
        ("genome:\n  source: ftp\n", "ftp"),
        ("cre:\n  conditions: ['expression']\n", "expression"),
    ],
)
def test_invalid_config_stops_before_any_rule_naming_the_key(tmp_path, bad, key):
    wd = workdir(tmp_path)
    (wd / "bad.yaml").write_text(bad)
    out = run(["--cores", "1", "--configfile", "bad.yaml"], wd)
    text = out.stdout + out.stderr
    assert out.returncode != 0
    assert "Error validating config file" in text and key in text
    assert not (wd / "results").exists()


@pytest.mark.slow
def test_tiny_end_to_end_run_then_nothing_then_only_affected_rules(tmp_path):
    wd = workdir(tmp_path)
    out = run(["--cores", "2", "--configfile", "config/tiny.yaml"], wd, timeout=1200)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]
    report = (wd / "results" / "report.md").read_text()
    assert "## Headline: each stage against its baseline" in report
    for section in ("Pretraining and held-out language modelling", "Fine-tuning benchmark", "Zero-shot variant effects",
                    "CRE design"):
        assert f"## {section}" in report
    assert "_missing:" not in report
    assert (wd / "results" / "report.html").exists()
    # a second run does nothing
    again = run(["--cores", "2", "--configfile", "config/tiny.yaml", "-n"], wd)
    assert "Nothing to be done" in again.stdout + again.stderr, again.stdout + again.stderr
    # changing one value re-runs only the rules that depend on it
    (wd / "change.yaml").write_text("cre:\n  num: 3\n")
    plan = run(["--cores", "2", "--configfile", "config/tiny.yaml", "change.yaml", "-n"], wd)
    text = plan.stdout + plan.stderr
    assert "generate_cre" in text and "evaluate_cre" in text and "report" in text
    for rule in ("pretrain", "benchmark", "score_variants", "finetune_generator", "train_oracle"):
        assert f"rule {rule}:" not in text, rule
    # scoring the variants as 3 shard jobs + a gather gives the same VCF records and scores
    vcf = wd / "results" / "variants" / "coding_snvs.vcf.gz"
    unsharded = vcf.read_bytes()
    vcf.unlink()
    (wd / "shards.yaml").write_text("variants:\n  shards: 3\n")
    out = run([str(vcf.relative_to(wd)), "--cores", "2", "--configfile", "config/tiny.yaml", "shards.yaml"], wd)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]
    assert sorted(p.name for p in (vcf.parent / "shards" / "coding_snvs").iterdir()) == [
        "1-of-3.vcf", "2-of-3.vcf", "3-of-3.vcf"]
    # same records and statuses; scores equal to float rounding (a record's batch neighbours can change the last
    # printed digit, see dnalm/variants/shard.py)
    import pysam

    saved = wd / "unsharded.vcf.gz"
    saved.write_bytes(unsharded)
    with pysam.VariantFile(str(saved)) as a, pysam.VariantFile(str(vcf)) as b:
        pairs = list(zip(a, b, strict=True))
    assert pairs and all((x.chrom, x.pos, x.id, x.ref, x.alts, x.info["DNALM_STATUS"])
                         == (y.chrom, y.pos, y.id, y.ref, y.alts, y.info["DNALM_STATUS"]) for x, y in pairs)
    for x, y in pairs:
        for u, v in zip(x.info.get("DNALM_LLR", ()), y.info.get("DNALM_LLR", ()), strict=True):
            assert (u is None and v is None) or abs(u - v) <= 1e-5 * max(1.0, abs(u))


def test_sharded_variant_scoring_plans_one_job_per_shard_and_one_gather(tmp_path):
    d = workdir(tmp_path)
    shutil.copytree(ROOT / "profiles", d / "profiles")
    (d / "shards.yaml").write_text("variants:\n  shards: 3\n")
    args = ["-n", "--configfile", "config/tiny.yaml", "shards.yaml"]
    if importlib.util.find_spec("snakemake_executor_plugin_slurm"):
        args = ["--profile", "profiles/slurm", *args]
    else:
        args = ["--cores", "2", *args]
    out = run(args, d)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    assert text.count("rule score_variant_shard:") == 3 and text.count("rule merge_variant_shards:") == 1
    assert "rule score_variants:" not in text


def test_slurm_profile_dry_run_and_gpu_requests_pass_the_plugin(tmp_path):
    """profiles/slurm plans the tiny pipeline, and every GPU request uses the plugin's resources (its own
    validator refuses --gres/--gpus inside slurm_extra at submission, which a dry run does not reach)."""
    pytest.importorskip("snakemake_executor_plugin_slurm", reason="pip install -e '.[slurm]'")
    from types import SimpleNamespace

    import yaml
    from snakemake_executor_plugin_slurm.validation import validate_slurm_extra

    d = workdir(tmp_path)
    shutil.copytree(ROOT / "profiles", d / "profiles")
    out = run(["--profile", "profiles/slurm", "-n", "--configfile", "config/tiny.yaml"], d)
    assert out.returncode == 0, out.stdout + out.stderr
    profile = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    gpu_rules = 0
    for rule, res in profile.get("set-resources", {}).items():
        validate_slurm_extra(SimpleNamespace(resources=SimpleNamespace(slurm_extra=res.get("slurm_extra"))))
        if res.get("slurm_partition") == "gpu":
            gpu_rules += 1
            assert res.get("gpu") or res.get("gres"), f"{rule}: a GPU partition without a gpu/gres request"
    assert gpu_rules >= 1
    with pytest.raises(Exception, match="not allowed"):  # the check can fail: the old form is refused
        validate_slurm_extra(SimpleNamespace(resources=SimpleNamespace(slurm_extra="--gres=gpu:1")))
