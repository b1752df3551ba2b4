"""Bad inputs, lying models, unsafe outputs and interruptions, run through the commands they apply to.

Every bad input is generated here in a temporary folder. Each case asserts the exit code, a message that names the
file (and the record or line where there is one), no traceback, and no file or folder left behind.
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import stat
from pathlib import Path

import pysam
import pytest
import torch
from safetensors.torch import load_file, save_file

import dnalm
from dnalm.cli import main
from dnalm.io.output import OutputError, OutputGuard, Terminated, atomic_folder, atomic_write


# ------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "m"
    dnalm.build_model("transformer-tiny", d_model=16, n_layer=1, attention=dict(n_heads=2), max_length=128).save_pretrained(path)
    return path


SEQS = {"chrA": "".join(random.Random(1).choice("ACGT") for _ in range(900)), "chrB": "ACGT" * 50}


def _fasta(path, seqs=SEQS, width=60):
    path.write_text("".join(f">{k}\n" + "\n".join(v[i : i + width] for i in range(0, len(v), width)) + "\n"
                            for k, v in seqs.items()))
    return path


def _vcf(path, records=None, contigs=None):
    contigs = contigs if contigs is not None else {k: len(v) for k, v in SEQS.items()}
    records = records if records is not None else [("chrA", p, SEQS["chrA"][p - 1], "ACGT"[(("ACGT".index(SEQS["chrA"][p - 1])) + 1) % 4])
                                                   for p in range(100, 200, 10)]
    lines = ["##fileformat=VCFv4.2"] + [f"##contig=<ID={k},length={n}>" for k, n in contigs.items()]
    lines.append("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO")
    lines += [f"{c}\t{p}\tv{i}\t{r}\t{a}\t.\t.\t." for i, (c, p, r, a) in enumerate(records)]
    path.write_text("\n".join(lines) + "\n")
    return path


def run_cli(capsys, args):
    """(exit code, stdout + stderr); never a traceback."""
    rc = main([str(a) for a in args])
    out = capsys.readouterr()
    text = out.out + out.err
    assert "Traceback" not in text, text
    return rc, text


def listing(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def score(model_dir, fasta, vcf, out, *extra):
    return ["score-variants", "--model", model_dir, "--fasta", fasta, "--input", vcf, "--out", out, "--window", "16",
            "--no-progress", *extra]


# ------------------------------------------------------------------------------------------------ outputs
def test_existing_output_refused_then_overwritten(tmp_path, capsys, model_dir):
    fasta, vcf = _fasta(tmp_path / "g.fa"), _vcf(tmp_path / "v.vcf")
    out = tmp_path / "o.vcf"
    out.write_text("precious\n")
    before = listing(tmp_path)
    rc, text = run_cli(capsys, score(model_dir, fasta, vcf, out))
    assert rc == 2 and str(out) in text and "--overwrite" in text
    assert out.read_text() == "precious\n"
    assert listing(tmp_path) == before
    rc, text = run_cli(capsys, score(model_dir, fasta, vcf, out, "--overwrite"))
    assert rc == 0 and out.read_text().startswith("##fileformat")


@pytest.mark.parametrize("which", ["input", "fasta", "model"])
def test_output_over_an_input_refused(tmp_path, capsys, model_dir, which):
    fasta, vcf = _fasta(tmp_path / "g.fa"), _vcf(tmp_path / "v.vcf")
    model = tmp_path / "m"
    shutil.copytree(model_dir, model)
    target = {"input": vcf, "fasta": fasta, "model": model}[which]
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    rc, text = run_cli(capsys, score(model, fasta, vcf, target, "--overwrite"))
    assert rc == 2 and str(target) in text and "input" in text
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_generate_and_finetune_refuse_existing_outputs_before_any_work(tmp_path, capsys, model_dir):
    fa = tmp_path / "gen.fa"
    fa.write_text(">x\nA\n")
    rc, text = run_cli(capsys, ["generate", "--model", model_dir, "--num", "2", "--length", "8", "--out", fa])
    assert rc == 2 and str(fa) in text and fa.read_text() == ">x\nA\n"
    (tmp_path / "ft").mkdir()
    (tmp_path / "ft" / "keep.txt").write_text("x")
    rc, text = run_cli(capsys, ["finetune", "--model", model_dir, "--task", tmp_path / "nowhere", "--out", tmp_path / "ft"])
    assert rc == 2 and "ft" in text and (tmp_path / "ft" / "keep.txt").read_text() == "x"


def test_prepare_genome_refuses_a_genome_of_the_same_name(tmp_path, capsys):
    fasta = _fasta(tmp_path / "g.fa")
    out = tmp_path / "out"
    assert run_cli(capsys, ["prepare-genome", fasta, "--out", out])[0] == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    _fasta(fasta, {"other": "ACGT" * 10})
    rc, text = run_cli(capsys, ["prepare-genome", fasta, "--out", out])
    assert rc == 2 and "g.fa.gz" in text and "--overwrite" in text
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    rc, _ = run_cli(capsys, ["prepare-genome", fasta, "--out", out, "--overwrite"])
    assert rc == 0 and dnalm.Genome(out / "g.fa.gz").names == ["other"]
    # the input itself as the output: refused even with --overwrite
    rc, text = run_cli(capsys, ["prepare-genome", out / "g.fa.gz", "--out", out, "--overwrite"])
    assert rc == 2 and "input" in text


def test_concurrent_writer_refused(tmp_path, capsys, model_dir):
    fasta, vcf = _fasta(tmp_path / "g.fa"), _vcf(tmp_path / "v.vcf")
    out = tmp_path / "o.tsv"
    with OutputGuard(out):  # another run holds the output
        rc, text = run_cli(capsys, score(model_dir, fasta, vcf, out))
    assert rc == 2 and "another dnalm run" in text and str(out) in text
    assert listing(tmp_path) == ["g.fa", "v.vcf"]


def test_output_below_a_file_refused_before_work(tmp_path, capsys, model_dir):
    fasta, vcf = _fasta(tmp_path / "g.fa"), _vcf(tmp_path / "v.vcf")
    rc, text = run_cli(capsys, score(model_dir, fasta, vcf, tmp_path / "v.vcf" / "o.tsv"))
    assert rc == 2 and "v.vcf" in text


def test_failed_run_leaves_no_output_folder(tmp_path, capsys, model_dir):
    csv = tmp_path / "t.csv"
    csv.write_text("sequence,label\n" + "".join(f"{'ACGT' * 5},1\n" for _ in range(30)))
    rc, text = run_cli(capsys, ["finetune", "--model", model_dir, "--task", f"csv:{csv}", "--out", tmp_path / "a" / "b"])
    assert rc == 2 and "t.csv" in text and "one class" in text.replace("all one class", "one class") or "label" in text
    assert listing(tmp_path) == ["t.csv"]


def test_stale_temporaries_of_killed_runs_are_swept(tmp_path, capsys, model_dir):
    fasta, vcf = _fasta(tmp_path / "g.fa"), _vcf(tmp_path / "v.vcf")
    dead = 2**22 + 12345  # beyond pid_max on most systems: no such process
    stale = tmp_path / f".o.tsv.dnalm-tmp-{dead}-abcd1234.tmp.tsv"
    stale.write_text("half")
    old = tmp_path / f".m.dnalm-old-{dead}-abcd1234"
    old.mkdir()  # a folder moved aside by a killed --overwrite run, whose new folder never arrived
    (old / "config.json").write_text("{}")
    rc, _ = run_cli(capsys, score(model_dir, fasta, vcf, tmp_path / "o.tsv"))
    assert rc == 0 and not stale.exists() and not old.exists()
    assert (tmp_path / "m" / "config.json").read_text() == "{}"  # put back where it was


def test_no_space_left_is_a_clear_error_and_leaves_nothing(tmp_path):
    target = tmp_path / "o.txt"
    with pytest.raises(OutputError, match="no space left"), atomic_write(target) as fh:
        fh.write("x")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert listing(tmp_path) == []


def test_signal_removes_temporaries_and_keeps_the_previous_output(tmp_path):
    target = tmp_path / "o.txt"
    target.write_text("previous")
    with pytest.raises(Terminated), atomic_write(target) as fh:
        fh.write("half")
        raise Terminated(15)
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "a").write_text("previous")
    with pytest.raises(KeyboardInterrupt), atomic_folder(folder) as tmp:
        (tmp / "a").write_text("half")
        raise KeyboardInterrupt
    assert listing(tmp_path) == ["f", "f/a", "o.txt"]
    assert target.read_text() == "previous" and (folder / "a").read_text() == "previous"


def test_guard_restores_a_replaced_folder_on_failure(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "result").write_text("previous")
    with pytest.raises(Terminated), OutputGuard(out, overwrite=True):
        out.mkdir()
        (out / "result").write_text("half")
        raise Terminated(15)
    assert listing(tmp_path) == ["run", "run/result"] and (out / "result").read_text() == "previous"


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_files_honour_the_umask(tmp_path, mask):
    old = os.umask(mask)
    try:
        torch.manual_seed(0)
        dnalm.build_model("transformer-tiny", d_model=16, n_layer=1, attention=dict(n_heads=2)).save_pretrained(tmp_path / "m")
        with atomic_folder(tmp_path / "f") as tmp:
            (tmp / "x").write_text("x")
    finally:
        os.umask(old)
    for p in [*(tmp_path / "m").iterdir(), tmp_path / "f" / "x"]:
        assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~mask, p
    assert stat.S_IMODE((tmp_path / "f").stat().st_mode) == 0o777 & ~mask


# ------------------------------------------------------------------------------------------------ inputs that lie
def test_fasta_edited_after_its_index_is_reindexed(tmp_path, capsys, caplog):
    fasta = _fasta(tmp_path / "g.fa")
    pysam.faidx(str(fasta))
    edited = dict(SEQS, chrA="T" + SEQS["chrA"])  # one base inserted: every later offset moves
    _fasta(fasta, edited)
    g = dnalm.Genome(fasta)
    assert g.fetch("chrB", 0, 8) == edited["chrB"][:8] and g.length("chrA") == 901
    assert "does not match" in caplog.text and "g.fa" in caplog.text


def test_bgzip_fasta_edited_after_its_index_is_reindexed(tmp_path):
    plain = _fasta(tmp_path / "g.fa")
    gz = tmp_path / "g.fa.gz"
    pysam.tabix_compress(str(plain), str(gz))
    pysam.faidx(str(gz))
    edited = dict(SEQS, chrA=SEQS["chrA"][:450] + "GGGG" + SEQS["chrA"][450:])
    _fasta(plain, edited)
    pysam.tabix_compress(str(plain), str(gz), force=True)
    assert dnalm.Genome(gz).fetch("chrB", 0, 12) == edited["chrB"][:12]


@pytest.mark.parametrize("what", ["fasta", "vcf"])
def test_truncated_bgzip_inputs_are_named(tmp_path, capsys, model_dir, what):
    fasta, vcf = _fasta(tmp_path / "g.fa"), _vcf(tmp_path / "v.vcf")
    target = {"fasta": fasta, "vcf": vcf}[what]
    gz = tmp_path / f"{target.name}.gz"
    pysam.tabix_compress(str(target), str(gz))
    gz.write_bytes(gz.read_bytes()[:-40])
    args = {"fasta": (gz, vcf), "vcf": (fasta, gz)}[what]
    rc, text = run_cli(capsys, score(model_dir, *args, tmp_path / "o.tsv"))
    assert rc == 2 and str(gz) in text and "truncated" in text
    assert not (tmp_path / "o.tsv").exists() and not list(tmp_path.glob(".o.tsv*"))


def test_empty_tables_are_named(tmp_path, capsys, model_dir):
    fasta = _fasta(tmp_path / "g.fa")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    rc, text = run_cli(capsys, score(model_dir, fasta, empty, tmp_path / "o.tsv"))
    assert rc == 2 and "empty.csv" in text and "empty" in text
    rc, text = run_cli(capsys, ["finetune", "--model", model_dir, "--task", f"csv:{empty}", "--out", tmp_path / "ft"])
    assert rc == 2 and "empty.csv" in text
    rc, text = run_cli(capsys, ["embed", "--model", model_dir, "--input", empty, "--out", tmp_path / "e.npz"])
    assert rc == 2 and "empty.csv" in text
    assert listing(tmp_path) == ["empty.csv", "g.fa", "g.fa.fai"]


def test_binary_config_is_named(tmp_path, capsys, model_dir):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_bytes(bytes(range(256)) * 4)
    rc, text = run_cli(capsys, ["finetune", "--model", model_dir, "--task", tmp_path, "--config", cfg, "--out", tmp_path / "ft"])
    assert rc == 2 and "cfg.yaml" in text
    assert not (tmp_path / "ft").exists()


def test_sequence_longer_than_the_model_is_refused_up_front(tmp_path, capsys, model_dir):
    fa = tmp_path / "s.fa"
    fa.write_text(">short\nACGTACGT\n>toolong\n" + "ACGT" * 100 + "\n")
    rc, text = run_cli(capsys, ["embed", "--model", model_dir, "--input", fa, "--out", tmp_path / "e.npz"])
    assert rc == 2 and "toolong" in text
    assert listing(tmp_path) == ["s.fa"]


def test_contig_lengths_disagreeing_with_the_genome(tmp_path, capsys, model_dir, caplog):
    fasta = _fasta(tmp_path / "g.fa")
    vcf = _vcf(tmp_path / "v.vcf", contigs={"chrA": 248_956_422, "chrB": 200})
    rc, _ = run_cli(capsys, score(model_dir, fasta, vcf, tmp_path / "o.tsv"))
    assert rc == 0 and "##contig lengths disagree" in caplog.text and "chrA 248,956,422 vs 900" in caplog.text
    rc, text = run_cli(capsys, score(model_dir, fasta, vcf, tmp_path / "o2.tsv", "--strict"))
    assert rc == 2 and "v.vcf" in text and "chrA" in text
    assert not (tmp_path / "o2.tsv").exists() and not (tmp_path / "o2.tsv.dnalm-resume").exists()


def test_ref_equal_to_alt_has_its_own_status(tmp_path, capsys, model_dir):
    fasta = _fasta(tmp_path / "g.fa")
    base = SEQS["chrA"][149]
    vcf = _vcf(tmp_path / "v.vcf", records=[("chrA", 150, base, base)])
    rc, text = run_cli(capsys, score(model_dir, fasta, vcf, tmp_path / "o.vcf"))
    assert rc == 0 and "ref_equals_alt" in text
    assert "DNALM_STATUS=ref_equals_alt" in (tmp_path / "o.vcf").read_text()


# ------------------------------------------------------------------------------------------------ models that lie
def _lying_model(model_dir, tmp_path, how):
    path = tmp_path / "bad"
    shutil.copytree(model_dir, path)
    weights = path / "model.safetensors"
    state = load_file(str(weights))
    if how == "missing":
        state.pop(sorted(state)[0])
        save_file(state, str(weights))
    elif how == "extra":
        save_file({**state, "surprise.weight": torch.zeros(2)}, str(weights))
    elif how == "shape":
        key = sorted(state)[1]
        save_file({**state, key: torch.zeros(*(d + 1 for d in state[key].shape))}, str(weights))
    elif how == "nan":
        key = sorted(state)[-1]
        state[key] = state[key].clone()
        state[key].view(-1)[0] = float("nan")
        save_file(state, str(weights))
    elif how == "truncated":
        weights.write_bytes(weights.read_bytes()[:-100])
    elif how == "empty":
        weights.write_bytes(b"")
    elif how == "garbage":
        weights.write_bytes(os.urandom(4096))
    elif how == "huge":
        meta = json.loads((path / "config.json").read_text())
        meta["config"]["d_model"] = 10_000_000
        (path / "config.json").write_text(json.dumps(meta))
    return path, weights


@pytest.mark.parametrize("how, expect", [
    ("missing", "missing tensor"), ("extra", "unexpected tensor(s): surprise.weight"), ("shape", "wrong shape"),
    ("nan", "non-finite"), ("truncated", "truncated"), ("empty", "empty"), ("garbage", "not a safetensors"),
    ("huge", "wrong shape"),
])
def test_lying_models_are_named(tmp_path, capsys, model_dir, how, expect):
    fasta, vcf = _fasta(tmp_path / "g.fa"), _vcf(tmp_path / "v.vcf")
    bad, weights = _lying_model(model_dir, tmp_path, how)
    rc, text = run_cli(capsys, score(bad, fasta, vcf, tmp_path / "o.tsv"))
    assert rc == 2 and str(weights) in text and expect in text, text
    assert "weights_only=False" not in text
    rc, text = run_cli(capsys, ["generate", "--model", bad, "--num", "1", "--length", "8", "--out", tmp_path / "g.fa2"])
    assert rc == 2 and str(weights) in text
    assert not (tmp_path / "o.tsv").exists() and not (tmp_path / "g.fa2").exists()


def test_pickle_refusal_never_suggests_weights_only_false(tmp_path):
    from dnalm.models.weights import describe_load_error

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    torch.save({"x": Evil()}, path)
    with pytest.raises(Exception) as info:
        torch.load(path, weights_only=True)
    text = describe_load_error(info.value)
    assert "weights_only=False" not in text and "weights_only` set to `False" not in text


# ------------------------------------------------------------------------------------------------ exit codes
def test_single_class_labels_exit_nonzero(tmp_path, capsys, model_dir):
    csv = tmp_path / "t.csv"
    rng = random.Random(0)
    csv.write_text("sequence,label\n" + "".join("".join(rng.choice("ACGT") for _ in range(20)) + ",pos\n" for _ in range(40)))
    rc, text = run_cli(capsys, ["finetune", "--model", model_dir, "--task", f"csv:{csv}", "--out", tmp_path / "ft"])
    assert rc == 2 and "t.csv" in text and "1 class" in text
    assert listing(tmp_path) == ["t.csv"]


def test_constant_oracle_target_exits_nonzero(tmp_path, capsys):
    csv = tmp_path / "a.csv"
    rng = random.Random(0)
    csv.write_text("sequence,activity\n" + "".join("".join(rng.choice("ACGT") for _ in range(30)) + ",1.5\n" for _ in range(60)))
    rc, text = run_cli(capsys, ["train-oracle", "--input", csv, "--label-columns", "activity", "--out", tmp_path / "o",
                                "--no-progress"])
    assert rc == 2 and "activity" in text and "constant" in text
    assert listing(tmp_path) == ["a.csv"]


def test_benchmark_with_every_model_run_failed_exits_nonzero(tmp_path, capsys, model_dir):
    bad, _ = _lying_model(model_dir, tmp_path, "nan")
    task = tmp_path / "task"
    task.mkdir()
    rng = random.Random(0)
    for split in ("train", "dev", "test"):
        (task / f"{split}.csv").write_text("sequence,label\n" + "".join(
            "".join(rng.choice("ACGT") for _ in range(20)) + f",{i % 2}\n" for i in range(24)))
    suite = tmp_path / "suite.yaml"
    suite.write_text(f"tasks:\n  t: {task}\npoolings: [mean]\nfinetune: {{max_steps: 2}}\n")
    rc, text = run_cli(capsys, ["benchmark", "--model", bad, "--suite", suite, "--out", tmp_path / "b"])
    assert rc != 0 and "failed" in text


# ------------------------------------------------------------------------------------------------ output locations
# every command that writes, with arguments that parse (inputs that do not exist: the output checks come first)
WRITERS = {
    "prepare-genome": ["{in}/g.fa", "--out", "{out}"],
    "derive-tasks": ["--fasta", "{in}/g.fa.gz", "--cds", "{in}/g.cds.bed", "--out", "{out}"],
    "report": ["--section", "{in}", "--out", "{out}.md"],  # a section without TITLE=: refused
    "pretrain": ["--config", "{in}/p.yaml", "--out", "{out}"],
    "evaluate-lm": ["--model", "{in}/m", "--fasta", "{in}/g.fa", "--out", "{out}.json"],
    "finetune": ["--model", "{in}/m", "--task", "{in}/task", "--out", "{out}"],
    "benchmark": ["--model", "{in}/m", "--suite", "{in}/s.yaml", "--out", "{out}"],
    "embed": ["--model", "{in}/m", "--input", "{in}/s.fa", "--out", "{out}.npz"],
    "predict": ["--model", "{in}/m", "--input", "{in}/s.fa", "--out", "{out}.tsv"],
    "finetune-generator": ["--model", "{in}/m", "--input", "{in}/t.csv", "--label-columns", "a", "--out", "{out}"],
    "generate": ["--model", "{in}/m", "--num", "1", "--out", "{out}.fa"],
    "train-oracle": ["--input", "{in}/t.csv", "--label-columns", "a", "--out", "{out}"],
    "evaluate-cre": ["--generated", "{in}/g.fa", "--oracle", "{in}/o", "--reference", "{in}/t.csv", "--out", "{out}"],
    "score-variants": ["--model", "{in}/m", "--fasta", "{in}/g.fa", "--input", "{in}/v.vcf", "--out", "{out}.vcf.gz"],
    "merge-scores": ["--input", "{in}/a.vcf", "{in}/b.vcf", "--out", "{out}.vcf"],
    "variant-summary": ["--input", "{in}/v.vcf", "--out", "{out}.tsv"],
    "ism": ["--model", "{in}/m", "--sequence", "ACGT", "--out", "{out}"],
    "attribute": ["--model", "{in}/m", "--input", "{in}/s.fa", "--out", "{out}"],
    "motifs": ["scan", "--input", "{in}/s.fa", "--motifs", "{in}/j.meme", "--out", "{out}.tsv"],
    "motifs discover": ["discover", "--attributions", "{in}/a.npz", "--out", "{out}"],
    "import-model": ["{in}/ckpt", "--out", "{out}"],
    "import-hyenadna": ["{in}/ckpt", "--out", "{out}"],
    "export": ["--model", "{in}/m", "--format", "mamba_ssm", "--out", "{out}"],
}


def writer_args(name, out, inputs):
    cmd = name.split()[0]
    return [cmd, *(a.replace("{out}", str(out)).replace("{in}", str(inputs)) for a in WRITERS[name])]


def test_every_writing_command_is_listed():
    from dnalm.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    writing = {n for n, p in sub.choices.items() if "--out" in p._option_string_actions}
    writing |= {n for n, p in sub.choices.items() for a in p._actions if getattr(a, "dest", "") == "motifs_command"}
    assert writing == {n.split()[0] for n in WRITERS}


def unwritable(tmp_path):
    """A folder this process cannot create files in (chmod; root ignores it, so then /sys), else skip."""
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    for candidate in (folder, "/sys"):
        try:
            (Path(candidate) / ".probe").touch()
        except OSError:
            return Path(candidate)
        (Path(candidate) / ".probe").unlink()
    pytest.skip("no unwritable folder on this machine")


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_unwritable_output_location_refused_before_work(tmp_path, capsys, name):
    ro = unwritable(tmp_path)
    inputs = tmp_path / "in"  # nothing there: a command that got past the output check would name an input instead
    try:
        for out in (ro / "dnalm-test-out", ro / "dnalm-test-missing" / "deeper" / "o"):
            rc, text = run_cli(capsys, writer_args(name, out, inputs))
            assert rc == 2 and "cannot write" in text and str(ro) in text, text
            assert not list(Path(ro).glob("*dnalm-test-*")) and not list(Path(ro).glob(".*dnalm-*"))
    finally:
        (tmp_path / "ro").chmod(0o755)
    assert listing(tmp_path) == ["ro"]


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_output_below_a_file_refused(tmp_path, capsys, name):
    (tmp_path / "afile").write_text("x")
    rc, text = run_cli(capsys, writer_args(name, tmp_path / "afile" / "sub" / "o", tmp_path / "in"))
    assert rc == 2 and "afile" in text and "not a folder" in text, text
    assert listing(tmp_path) == ["afile"] and (tmp_path / "afile").read_text() == "x"


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_failed_run_removes_the_missing_parents_it_made(tmp_path, capsys, name):
    rc, text = run_cli(capsys, writer_args(name, tmp_path / "new" / "deeper" / "o", tmp_path / "in"))
    assert rc == 2 and str(tmp_path / "in") in text, text  # the missing input is what stopped it
    assert listing(tmp_path) == []


# ------------------------------------------------------------------------------------------------ sibling outputs
def _labelled_vcf(path):
    _vcf(path)
    lines = path.read_text().splitlines()
    body = [ln.rsplit("\t", 1)[0] + f"\tCSQ={'ab'[i % 2]}" for i, ln in enumerate(ln for ln in lines if not ln.startswith("#"))]
    path.write_text("\n".join([ln for ln in lines if ln.startswith("#")] + body) + "\n")
    return path


def test_every_file_written_beside_out_is_declared(tmp_path, capsys, model_dir):
    """Run each command that writes beside --out into an empty folder: what appears is --out and its SIBLINGS."""
    from dnalm.io.output import SIBLINGS, sibling_paths

    fasta, vcf = _fasta(tmp_path / "g.fa"), _labelled_vcf(tmp_path / "v.vcf")
    png = tmp_path / "plot.png"
    png.write_bytes(bytes.fromhex("89504e470d0a1a0a") + b"\0" * 16)
    runs = [
        ("score-variants", "o.vcf.gz", score(model_dir, fasta, vcf, "{out}")),
        ("score-variants", "o.bcf", score(model_dir, fasta, vcf, "{out}")),
        ("score-variants", "s1.vcf", score(model_dir, fasta, vcf, "{out}", "--shard", "1/2")),
        ("score-variants", "s2.vcf", score(model_dir, fasta, vcf, "{out}", "--shard", "2/2")),
        ("merge-scores", "m.vcf.gz", ["merge-scores", "--input", "{res}/s1.vcf", "{res}/s2.vcf", "--out", "{out}"]),
        ("merge-scores", "m.bcf", ["merge-scores", "--input", "{res}/s1.vcf", "{res}/s2.vcf", "--out", "{out}"]),
        ("variant-summary", "sum.tsv", ["variant-summary", "--input", "{res}/s1.vcf", "--out", "{out}"]),
        ("generate", "gen.fa", ["generate", "--model", model_dir, "--num", "2", "--length", "8", "--seed", "0",
                                "--no-progress", "--out", "{out}"]),
        ("report", "r.md", ["report", "--section", f"Plot={png}", "--out", "{out}"]),
    ]
    seen = set()
    for name, out_name, args in runs:
        res = tmp_path / f"res-{out_name}"
        res.mkdir()
        if name in ("merge-scores", "variant-summary"):
            for shard in ("s1.vcf", "s2.vcf"):
                shutil.copy(tmp_path / f"res-{shard}" / shard, res / shard)
        before = set(listing(res))
        out = res / out_name
        rc, text = run_cli(capsys, [str(a).replace("{out}", str(out)).replace("{res}", str(res)) for a in args])
        assert rc == 0, text
        declared = {str(p.relative_to(res)) for p in sibling_paths(out, SIBLINGS.get(name, ()))}
        written = {p.split("/")[0] for p in set(listing(res)) - before} - {out_name}
        assert written <= declared, (name, written - declared)
        seen |= {(name, d) for d in written}
    for name, templates in SIBLINGS.items():  # no dead declaration: each template was written by some run
        for t in templates:
            assert any(n == name and _matches(t, d) for n, d in seen), (name, t)


def _matches(template, name):
    """Whether the file name ``name`` could come from ``template`` for some output."""
    import re

    pattern = re.escape(template).replace(r"\{out\}", ".+").replace(r"\{stem\}", ".+")
    return re.fullmatch(pattern, name) is not None


def test_sibling_outputs_are_guarded_like_the_output(tmp_path, capsys, model_dir, monkeypatch):
    png = tmp_path / "plot.png"
    png.write_bytes(bytes.fromhex("89504e470d0a1a0a") + b"\0" * 16)
    # an existing sibling is refused without --overwrite; nothing is written
    (tmp_path / "r.html").write_text("precious")
    rc, text = run_cli(capsys, ["report", "--section", f"P={png}", "--out", tmp_path / "r.md"])
    assert rc == 2 and "r.html" in text and "--overwrite" in text
    assert (tmp_path / "r.html").read_text() == "precious" and not (tmp_path / "r.md").exists()
    (tmp_path / "gen.fa.json").write_text("precious")
    rc, text = run_cli(capsys, ["generate", "--model", model_dir, "--num", "1", "--length", "8", "--out", tmp_path / "gen.fa"])
    assert rc == 2 and "gen.fa.json" in text and not (tmp_path / "gen.fa").exists()
    # a sibling is never written over an input, even with --overwrite (the figure folder of report.md holds one)
    (tmp_path / "r_files").mkdir()
    shutil.copy(png, tmp_path / "r_files" / "p.png")
    rc, text = run_cli(capsys, ["report", "--section", f"P={tmp_path / 'r_files' / 'p.png'}", "--out", tmp_path / "r.md",
                                "--overwrite"])
    assert rc == 2 and "r_files" in text and "input" in text and (tmp_path / "r_files" / "p.png").exists()
    vcf = _labelled_vcf(tmp_path / "calls.png")  # a VCF whose name is the summary's figure
    rc, text = run_cli(capsys, ["variant-summary", "--input", vcf, "--out", tmp_path / "calls.tsv", "--overwrite"])
    assert rc == 2 and "calls.png" in text and "input" in text
    # an output named like its own sibling
    rc, text = run_cli(capsys, ["variant-summary", "--input", vcf, "--out", tmp_path / "s.png"])
    assert rc == 2 and "also writes" in text
    # --overwrite replaces the siblings as a whole: an old figure folder does not outlive its report
    shutil.rmtree(tmp_path / "r_files")
    (tmp_path / "r_files").mkdir()
    (tmp_path / "r_files" / "stale.png").write_bytes(b"old")
    rc, text = run_cli(capsys, ["report", "--section", f"P={png}", "--out", tmp_path / "r.md", "--overwrite"])
    assert rc == 0 and sorted(os.listdir(tmp_path / "r_files")) == ["P.png"] or rc == 0 and not (tmp_path / "r_files" / "stale.png").exists()
    assert (tmp_path / "r.html").read_text() != "precious"
    assert not [p for p in listing(tmp_path) if "dnalm-" in p]


def test_guard_puts_back_every_replaced_output_on_failure(tmp_path):
    out, html, figs = tmp_path / "r.md", tmp_path / "r.html", tmp_path / "r_files"
    out.write_text("old md")
    html.write_text("old html")
    figs.mkdir()
    (figs / "a.png").write_text("old png")
    with pytest.raises(Terminated), OutputGuard(out, overwrite=True, siblings=[html, figs]):
        with atomic_write(out) as fh:
            fh.write("new md")
        with atomic_write(html) as fh:
            fh.write("new html")
        figs.mkdir()
        raise Terminated(15)
    assert out.read_text() == "old md" and html.read_text() == "old html" and (figs / "a.png").read_text() == "old png"
    assert listing(tmp_path) == ["r.html", "r.md", "r_files", "r_files/a.png"]
    # a run that fails leaves none of the outputs it created; one that succeeds drops a stale sibling it did not rewrite
    new = tmp_path / "new"
    with pytest.raises(KeyboardInterrupt), OutputGuard(new / "o.vcf.gz", siblings=[new / "o.vcf.gz.tbi"]):
        (new / "o.vcf.gz").write_text("x")
        (new / "o.vcf.gz.tbi").write_text("x")
        raise KeyboardInterrupt
    assert not new.exists()
    with OutputGuard(out, overwrite=True, siblings=[html]):
        out.write_text("newer md")  # the page is not written again: the old one no longer matches
    assert out.read_text() == "newer md" and not html.exists()
    assert not [p for p in listing(tmp_path) if "dnalm-" in p]


@pytest.mark.parametrize("cmd, made", [("score-variants", "folder"), ("ism", "file")])
def test_out_of_the_wrong_kind_is_refused_even_with_overwrite(tmp_path, capsys, model_dir, cmd, made):
    fasta, vcf = _fasta(tmp_path / "g.fa"), _vcf(tmp_path / "v.vcf")
    out = tmp_path / "o"
    if made == "folder":
        out.mkdir()
        (out / "keep.txt").write_text("x")
        args = score(model_dir, fasta, vcf, out, "--overwrite")
    else:
        out.write_text("x")
        args = ["ism", "--model", model_dir, "--sequence", "ACGTACGT", "--out", out, "--overwrite", "--no-progress"]
    rc, text = run_cli(capsys, args)
    assert rc == 2 and f"is a {made}" in text and str(out) in text
    assert (out / "keep.txt").read_text() == "x" if made == "folder" else out.read_text() == "x"


def test_the_current_folder_is_never_replaced(tmp_path, capsys, model_dir, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    (work / "keep.txt").write_text("x")
    monkeypatch.chdir(work)
    for out in (".", "..", str(work)):
        rc, text = run_cli(capsys, ["ism", "--model", model_dir, "--sequence", "ACGTACGT", "--out", out, "--overwrite"])
        assert rc == 2 and "current folder" in text
    assert (work / "keep.txt").read_text() == "x"


# ------------------------------------------------------------------------------------------------ settings and inputs
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_settings_are_refused_by_the_one_loader(tmp_path, capsys, model_dir, value):
    csv = tmp_path / "t.csv"
    rng = random.Random(0)
    csv.write_text("sequence,a\n" + "".join("".join(rng.choice("ACGT") for _ in range(20)) + f",{rng.random()}\n"
                                            for _ in range(20)))
    for args in (["train-oracle", "--input", csv, "--label-columns", "a", "--set", f"lr={value}"],
                 ["finetune-generator", "--model", model_dir, "--input", csv, "--label-columns", "a",
                  "--set", f"weight_decay={value}"]):
        rc, text = run_cli(capsys, [*args, "--out", tmp_path / "o", "--no-progress"])
        assert rc == 2 and "finite" in text and value in text, text
    assert listing(tmp_path) == ["t.csv"]


def test_report_of_a_missing_results_folder_is_refused(tmp_path, capsys):
    rc, text = run_cli(capsys, ["report", "--results", tmp_path / "nowhere", "--out", tmp_path / "r.md"])
    assert rc == 2 and "nowhere" in text and "not found" in text
    assert listing(tmp_path) == []
