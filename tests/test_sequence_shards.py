"""--region / --shard I/N on embed and attribute (dnalm.data.sequences.select over dnalm.io.regions), the embedding
gather of merge-scores, and the one sequence reader (FASTA, table, BED + genome) on real C. elegans genes."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch

import dnalm
from dnalm.cli import main as cli_main
from dnalm.data.sequences import read_sequence_input, select
from dnalm.errors import InputError

N_SHARDS = 3


@pytest.fixture(scope="module")
def genes(celegans_dir, tmp_path_factory):
    """A BED6 of 24 real C. elegans genes under 1.5 kb (lengths vary 10-fold: balancing by work matters), a tiny
    saved causal LM, and the genome."""
    tmp = tmp_path_factory.mktemp("seqshards")
    rows = []
    with gzip.open(celegans_dir / "C.elegans.gff.gz", "rt") as fh:
        for line in fh:
            f = line.split("\t")
            if len(f) > 8 and f[2] == "gene" and int(f[4]) - int(f[3]) < 1500:
                name = f[8].split(";")[0].removeprefix("ID=Gene:")
                rows.append(f"{f[0]}\t{int(f[3]) - 1}\t{f[4]}\t{name}\t0\t{f[6]}\n")
    rows = rows[::5][:24]
    bed = tmp / "genes.bed"
    bed.write_text("".join(rows))
    torch.manual_seed(0)
    model = dnalm.build_model("transformer-tiny", d_model=16, n_layer=1, attention={"n_heads": 4}).eval()
    model.save_pretrained(tmp / "lm")
    return tmp, bed, celegans_dir / "C.elegans.fa.gz"


def _load(path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def test_reader_names_coordinates_and_region_overlap(genes):
    tmp, bed, fasta = genes
    r = read_sequence_input(bed, fasta, label_columns=None)
    lines = [x.split("\t") for x in bed.read_text().splitlines()]
    assert len(r) == 24 and r.names == [x[3] for x in lines] and r.record.tolist() == list(range(24))
    genome = dnalm.Genome(fasta)
    for i in (0, 7):  # - strand genes come reverse-complemented, + strand ones as in the genome
        c, s, e, st = lines[i][0], int(lines[i][1]), int(lines[i][2]), lines[i][5]
        assert r.sequences[i] == genome.fetch(c, s, e, strand=st).upper() and r.extra["strand"][i] == st
    # --region: an interval is in it when it overlaps it (checked against a plain re-count of the BED)
    chosen = select(r, ["II", "III:1-40000"], genome=fasta)
    want = [x[3] for x in lines if x[0] == "II" or (x[0] == "III" and int(x[1]) < 40000)]
    assert len(want) > 2 and chosen.names == want
    assert select(r, ["chrII"], genome=fasta).names == [x[3] for x in lines if x[0] == "II"]  # alias
    fa = tmp / "s.fa"
    fa.write_text(">a\nACGT\n")
    with pytest.raises(InputError, match="needs genome coordinates"):
        select(read_sequence_input(fa), ["I"])


def test_embed_shards_cover_every_interval_once_and_gather_to_the_whole(genes):
    tmp, bed, fasta = genes
    common = ["embed", "--model", str(tmp / "lm"), "--input", str(bed), "--fasta", str(fasta), "--no-progress",
              "--threads", "1", "--batch-size", "4"]
    whole = tmp / "whole.npz"
    assert cli_main([*common, "--out", str(whole)]) == 0
    parts = [tmp / f"emb{i}.npz" for i in range(1, N_SHARDS + 1)]
    for i, part in enumerate(parts, 1):
        assert cli_main([*common, "--shard", f"{i}/{N_SHARDS}", "--out", str(part)]) == 0
    w, shards = _load(whole), [_load(p) for p in parts]
    assert all(len(s["record"]) > 0 for s in shards)
    assert np.concatenate([s["record"] for s in shards]).tolist() == list(range(24)) == w["record"].tolist()
    for key in ("name", "chrom", "start", "end", "strand"):
        assert np.concatenate([s[key] for s in shards]).tolist() == w[key].tolist(), key
    np.testing.assert_allclose(np.concatenate([s["embeddings"] for s in shards]), w["embeddings"], rtol=1e-5, atol=1e-6)
    # balanced by bases, not by count: no shard holds more than a third of the bases plus one gene
    work = (w["end"] - w["start"] + 2).astype(float)
    per_shard = [work[s["record"]].sum() for s in shards]
    assert max(per_shard) <= work.sum() / N_SHARDS + work.max()
    # the gather (merge-scores on .npz) writes the unsharded file's arrays
    merged = tmp / "merged.npz"
    assert cli_main(["merge-scores", "--input", *map(str, parts), "--out", str(merged)]) == 0
    m = _load(merged)
    assert sorted(m) == sorted(w)
    for key in w:
        if key == "embeddings":
            np.testing.assert_allclose(m[key], w[key], rtol=1e-5, atol=1e-6)
        else:
            assert m[key].tolist() == w[key].tolist(), key
    # shards out of order, or missing one, are refused with the file named (exit 2)
    assert cli_main(["merge-scores", "--input", str(parts[1]), str(parts[0]), str(parts[2]),
                     "--out", str(tmp / "bad.npz")]) == 2
    assert cli_main(["merge-scores", "--input", str(parts[0]), str(parts[1]), "--out", str(tmp / "bad.npz")]) == 2
    assert not (tmp / "bad.npz").exists()


def test_embed_region_and_shards_of_a_region(genes):
    tmp, bed, fasta = genes
    common = ["embed", "--model", str(tmp / "lm"), "--input", str(bed), "--fasta", str(fasta), "--no-progress",
              "--threads", "1", "--region", "I", "--region", "V", "--out"]
    whole = tmp / "IV.safetensors"
    assert cli_main([*common, str(whole)]) == 0
    parts = [tmp / f"IV{i}.safetensors" for i in (1, 2)]
    for i, part in enumerate(parts, 1):
        assert cli_main([*common, str(part), "--shard", f"{i}/2"]) == 0
    merged = tmp / "IVm.safetensors"
    assert cli_main(["merge-scores", "--input", *map(str, parts), "--out", str(merged)]) == 0
    from safetensors import safe_open
    from safetensors.numpy import load_file

    a, b = load_file(str(whole)), load_file(str(merged))
    lines = [x.split("\t") for x in bed.read_text().splitlines()]
    want = [i for i, x in enumerate(lines) if x[0] in ("I", "V")]
    assert a["record"].tolist() == want == b["record"].tolist()
    np.testing.assert_allclose(b["embeddings"], a["embeddings"], rtol=1e-5, atol=1e-6)
    with safe_open(str(whole), "numpy") as fa, safe_open(str(merged), "numpy") as fb:
        import json

        ma, mb = json.loads(fa.metadata()["dnalm"]), json.loads(fb.metadata()["dnalm"])
    assert ma == mb and ma["name"] == [lines[i][3] for i in want]


def test_attribute_shards_equal_the_whole(genes):
    """IG with dinucleotide-shuffled baselines: a sequence's shuffles follow its input record number, so shards give
    the whole run's attributions."""
    tmp, bed, fasta = genes
    common = ["attribute", "--model", str(tmp / "lm"), "--bed", str(bed), "--fasta", str(fasta), "--length", "64",
              "--max-sequences", "9", "--method", "ig", "--shuffles", "2", "--steps", "4", "--top", "0",
              "--no-progress", "--threads", "1"]
    assert cli_main([*common, "--out", str(tmp / "attr")]) == 0
    for i in range(1, N_SHARDS + 1):
        assert cli_main([*common, "--shard", f"{i}/{N_SHARDS}", "--out", str(tmp / f"attr{i}")]) == 0
    w = _load(tmp / "attr" / "attributions.npz")
    shards = [_load(tmp / f"attr{i}" / "attributions.npz") for i in range(1, N_SHARDS + 1)]
    assert np.concatenate([s["record"] for s in shards]).tolist() == list(range(9)) == w["record"].tolist()
    for key in ("names", "chrom", "start"):
        assert np.concatenate([s[key] for s in shards]).tolist() == w[key].tolist()
    for key in ("contributions", "hypothetical", "scores", "baseline_scores"):
        np.testing.assert_allclose(np.concatenate([s[key] for s in shards]), w[key], rtol=1e-4, atol=1e-6, err_msg=key)
    # a region on FASTA input has no coordinates to select by: exit 2, no traceback
    fa = tmp / "q.fa"
    fa.write_text(">q\nACGTACGTAC\n")
    assert cli_main(["attribute", "--model", str(tmp / "lm"), "--input", str(fa), "--region", "I",
                     "--out", str(tmp / "attr_bad")]) == 2


def test_generate_prompts_from_bed_and_fasta(genes):
    """--prompts reads prompts through the one reader: BED + --fasta (strand-aware, as embed/predict) or FASTA; one
    prompt from the file gives what --prompt gives with the same seed."""
    import pysam

    tmp, _bed, fasta = genes
    genome = dnalm.Genome(fasta)
    bed = tmp / "prompts.bed"
    bed.write_text("I\t2000\t2006\tp1\t0\t+\nII\t3000\t3005\tp2\t0\t-\n")
    common = ["generate", "--model", str(tmp / "lm"), "--num", "2", "--length", "12", "--seed", "3", "--no-progress"]
    assert cli_main([*common, "--prompts", str(bed), "--fasta", str(fasta), "--out", str(tmp / "g.fa")]) == 0
    with pysam.FastxFile(str(tmp / "g.fa")) as fh:
        recs = [(r.comment, r.sequence) for r in fh]
    starts = [genome.fetch("I", 2000, 2006).upper(), genome.fetch("II", 3000, 3005, strand="-").upper()]
    assert len(recs) == 4 and all(len(s) == 12 for _, s in recs)
    for (comment, seq), (name, start) in zip(recs, [("p1", starts[0])] * 2 + [("p2", starts[1])] * 2):
        assert f"prompt={name}" in comment and seq.startswith(start)
    assert cli_main([*common, "--prompt", starts[0], "--out", str(tmp / "one.fa")]) == 0
    with pysam.FastxFile(str(tmp / "one.fa")) as fh:
        assert [r.sequence for r in fh] == [s for _, s in recs[:2]]
    fa = tmp / "prompts.fa"
    fa.write_text(">q1\nACGTA\n")
    assert cli_main([*common, "--prompts", str(fa), "--out", str(tmp / "gen_q.fa")]) == 0
    assert cli_main([*common, "--prompts", str(bed), "--out", str(tmp / "bad.fa")]) == 2  # BED without --fasta
