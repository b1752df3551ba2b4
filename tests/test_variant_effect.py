"""Variant-effect scoring and ISM: windows, scores vs a direct computation, prefix reuse, VCF/TSV output, CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pysam
import pytest
import torch

import dnalm
from dnalm.cli import main as cli_main
from dnalm.errors import InputError
from dnalm.tokenizer import BOS_ID, DNATokenizer, reverse_complement
from dnalm.variants import (
    ism,
    score_sequence_pairs,
    score_variants,
    variant_windows,
    window_split,
    write_variant_scores,
)

TOK = DNATokenizer()


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The test machine's cores are shared: one thread is faster than two contended ones."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def tiny(preset="transformer-tiny", seed=0, **kw):
    small = {
        "transformer-tiny": dict(d_model=32, n_layer=2, attention=dict(n_heads=4, rotary=True)),
        "hybridna-tiny": dict(
            d_model=32,
            n_layer=3,
            attn_layer_idx=[1],
            attention=dict(n_heads=2),
            mamba2=dict(d_state=8, headdim=16, chunk_size=16),
        ),
        "hyenadna-tiny": dict(d_model=32, n_layer=2, d_intermediate=64, max_length=256),
    }[preset]
    torch.manual_seed(seed)
    return dnalm.build_model(preset, **{**small, **kw}).eval()


@pytest.fixture(scope="module")
def model():
    return tiny()


@pytest.fixture(scope="module")
def genome(tmp_path_factory):
    """Two chromosomes '1' (300 bp, with a soft-masked stretch) and '2' (120 bp), random but seeded."""
    rng = np.random.default_rng(1)
    seqs = {name: "".join(rng.choice(list("ACGT"), n)) for name, n in (("1", 300), ("2", 120))}
    seqs["1"] = seqs["1"][:100] + seqs["1"][100:140].lower() + seqs["1"][140:]
    path = tmp_path_factory.mktemp("genome") / "toy.fa"
    with open(path, "w") as fh:
        fh.writelines(f">{name}\n" + "\n".join(s[i : i + 60] for i in range(0, len(s), 60)) + "\n" for name, s in seqs.items())
    g = dnalm.Genome(path)
    g.seqs = {k: v.upper() for k, v in seqs.items()}  # the truth, for the naive references below
    return g


def naive_windows(seq: str, pos: int, ref: str, alt: str, W: int, strand: str):
    """The documented window convention, written out on an N-padded chromosome string."""
    pad = "N" * (2 * W)
    s = pad + seq + pad
    p = pos - 1 + len(pad)
    if strand == "+":
        L = W // 2
        return tuple((s[p - L : p] + a + s[p + len(ref) :])[:W] for a in (ref, alt))
    R = W - W // 2 - 1
    out = []
    for a in (ref, alt):
        right = s[p + len(ref) : p + len(ref) + R]
        left_n = W - R - len(a)
        w = (s[p - left_n : p] if left_n > 0 else "") + a + right
        out.append(reverse_complement(w[len(w) - W :]))
    return tuple(out)


def direct_scores(model, ref_w: str, alt_w: str):
    """LLR (mean and sum) and embedding cosine distance from two full forward passes, no cache."""
    ids = torch.tensor([[BOS_ID] + TOK.encode(ref_w), [BOS_ID] + TOK.encode(alt_w)])
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits.double(), -1)
        emb = model.embed(ids)[:, 1:].double().mean(1)
    ll = [sum(float(logp[k, t, ids[k, t + 1]]) for t in range(ids.shape[1] - 1)) for k in range(2)]
    W = len(ref_w)
    cos = float(torch.nn.functional.cosine_similarity(emb[0], emb[1], dim=0))
    return (ll[1] - ll[0]) / W, ll[1] - ll[0], 1 - cos


VARIANTS = [  # (chrom, pos, ref, alt) on the toy genome; REF filled in from the genome
    ("1", 150, None, "A"),
    ("1", 150, None, "C"),
    ("1", 150, None, "G"),
    ("1", 150, None, "T"),  # 3 ALTs + REF==ALT
    ("1", 1, None, "G"),
    ("1", 300, None, "G"),
    ("2", 60, None, "T"),  # chromosome ends, second chromosome
    ("1", 80, 3, "X1"),
    ("1", 90, 1, "X+ACGTAC"),
    ("1", 298, 3, "X1"),
    ("2", 2, 1, "X+TTTT"),  # deletions/insertions
]


def variant_table(genome):
    rows = []
    for chrom, pos, rlen, alt in VARIANTS:
        seq = genome.seqs[chrom]
        ref = seq[pos - 1 : pos - 1 + (rlen or 1)]
        if alt == "X1":
            alt = ref[0]
        elif alt.startswith("X+"):
            alt = ref + alt[2:]
        rows.append((chrom, pos, ref, alt))
    df = pd.DataFrame(rows, columns=["chrom", "pos", "ref", "alt"])
    return df[df["ref"] != df["alt"]].reset_index(drop=True)


# --------------------------------------------------------------------------------------------------- windows
@pytest.mark.parametrize("W", [8, 9, 32])
@pytest.mark.parametrize("strand", ["+", "-"])
def test_windows_follow_the_convention(genome, W, strand):
    for chrom, pos, ref, alt in variant_table(genome).itertuples(index=False):
        got = variant_windows(genome, chrom, pos, ref, alt, W, strand)
        assert got == naive_windows(genome.seqs[chrom], pos, ref, alt, W, strand)
        assert len(got[0]) == len(got[1]) == W
        split = window_split(W, strand)
        assert got[0][:split] == got[1][:split]  # the flank read first is shared


def test_snv_minus_window_is_reverse_complement_and_ends_pad_with_n(genome):
    for pos in (1, 2, 150, 299, 300):
        ref = genome.seqs["1"][pos - 1]
        plus = variant_windows(genome, "1", pos, ref, "A" if ref != "A" else "C", 16, "+")
        minus = variant_windows(genome, "1", pos, ref, "A" if ref != "A" else "C", 16, "-")
        assert minus == tuple(reverse_complement(w) for w in plus)
        assert plus[0] == genome.fetch("1", pos - 1 - 8, pos - 1 + 8, pad=True)
    assert variant_windows(genome, "1", 1, genome.seqs["1"][0], "N", 16, "+")[0].startswith("N" * 8)
    assert variant_windows(genome, "1", 300, genome.seqs["1"][-1], "N", 16, "+")[0].endswith("N" * 7)


# ---------------------------------------------------------------------------------------------------- scores
@pytest.mark.parametrize("strands", ["+", "-", "both"])
def test_scores_match_a_direct_computation(model, genome, strands):
    df = variant_table(genome)
    W = 24
    got = score_variants(
        model,
        genome,
        df,
        window=W,
        strands=strands,
        scores=("llr", "llr_sum", "embedding_cosine"),
        batch_size=4,
        progress=False,
    )
    assert (got["status"] == "ok").all()
    for row, g in zip(df.itertuples(index=False), got.itertuples()):
        per_strand = [
            direct_scores(model, *naive_windows(genome.seqs[row.chrom], row.pos, row.ref, row.alt, W, s))
            for s in (["+", "-"] if strands == "both" else [strands])
        ]
        llr, llr_sum, cos = np.mean(per_strand, 0)
        assert g.llr == pytest.approx(llr, abs=1e-5)
        assert g.llr_sum == pytest.approx(llr_sum, abs=1e-4)
        assert g.embedding_cosine == pytest.approx(cos, abs=1e-5)


@pytest.mark.parametrize("preset", ["transformer-tiny", "hybridna-tiny", "hyenadna-tiny"])
def test_prefix_reuse_gives_the_same_scores(genome, preset):
    m = tiny(preset)
    df = variant_table(genome)
    kw = dict(window=33, scores=("llr", "embedding_cosine"), batch_size=3, progress=False)
    a = score_variants(m, genome, df, reuse_prefix=True, **kw)
    b = score_variants(m, genome, df, reuse_prefix=False, **kw)
    np.testing.assert_allclose(a["llr"], b["llr"], atol=1e-6)
    np.testing.assert_allclose(a["embedding_cosine"], b["embedding_cosine"], atol=1e-6)
    assert a["llr"].abs().max() > 1e-5  # the scores are not all zero


def test_ref_against_itself_scores_zero(model, genome):
    seqs = [genome.seqs["1"][i : i + 40] for i in (0, 50, 200)]
    for reuse in (True, False):
        out = score_sequence_pairs(model, seqs, seqs, scores=("llr", "embedding_cosine"), reuse_prefix=reuse)
        np.testing.assert_allclose(out["llr"], 0, atol=1e-12)
        np.testing.assert_allclose(out["embedding_cosine"], 0, atol=1e-9)
    with pytest.raises(InputError):
        score_sequence_pairs(model, ["ACGT"], ["ACG"])


def test_head_delta(model, genome):
    def gc_count(ids):  # a "head": number of G/C tokens, so that the expected delta is known exactly
        return ((ids == TOK.vocab["G"]) | (ids == TOK.vocab["C"])).float().sum(1)

    def two_outputs(ids):
        return torch.stack([gc_count(ids), (ids == TOK.vocab["A"]).float().sum(1)], 1)

    pos = 150
    ref = genome.seqs["1"][pos - 1]
    alt = {"A": "G", "T": "C", "C": "A", "G": "T"}[ref]  # A/T -> G/C gains one G/C; C/G -> A/T loses one
    df = pd.DataFrame({"chrom": ["1"], "pos": [pos], "ref": [ref], "alt": [alt]})
    out = score_variants(model, genome, df, window=20, scores=("llr",), head=gc_count, progress=False)
    assert out["head"].iloc[0] == pytest.approx(1.0 if ref in "AT" else -1.0)
    out = score_variants(model, genome, df, window=20, scores=("llr",), head=two_outputs, progress=False)
    assert {"head_0", "head_1"} <= set(out.columns)


# ---------------------------------------------------------------------------------------- messy VCF records
def _write_vcf(path, genome, lines):
    header = ["##fileformat=VCFv4.2"] + [
        f"##contig=<ID=chr{c},length={n}>" for c, n in genome.chrom_sizes.items()
    ]
    header += [
        '##INFO=<ID=DP,Number=1,Type=Integer,Description="depth">',
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO",
    ]
    path.write_text("\n".join(header + lines) + "\n")
    return path


def test_messy_vcf_every_record_kept(model, genome, tmp_path):
    s1 = genome.seqs["1"]
    wrong = next(b for b in "ACGT" if b != s1[9])
    lines = [
        f"chr1\t120\tlower\t{s1[119].lower()}\t{'g' if s1[119] != 'G' else 't'}\t.\tPASS\tDP=3",  # chr prefix, lower case
        f"chr1\t130\tmulti\t{s1[129]}\t{','.join(b for b in 'ACGT' if b != s1[129])}\t50\t.\t.",  # multi-allelic
        f"chr1\t10\tmismatch\t{wrong}\tA\t.\t.\t.",
        f"chr1\t20\tsymbolic\t{s1[19]}\t<DEL>\t.\t.\t.",
        "chrUn\t5\tunknown\tA\tC\t.\t.\t.",
        f"chr1\t1\tfirst\t{s1[0]}\t{'A' if s1[0] != 'A' else 'C'}\t.\t.\t.",
        f"chr2\t120\tlast\t{genome.seqs['2'][119]}\tN\t.\t.\t.",
        f"chr1\t30\tnoalt\t{s1[29]}\t.\t.\t.\t.",
        f"chr1\t50\tdel\t{s1[49:52]}\t{s1[49]}\t.\t.\t.",
    ]
    vcf = _write_vcf(tmp_path / "in.vcf", genome, lines)
    scores = score_variants(model, genome, vcf, window=16, progress=False)
    by_id = {vid: g for vid, g in scores.groupby("id")}
    assert by_id["lower"]["status"].tolist() == ["ok"] and by_id["lower"]["genome_chrom"].tolist() == ["1"]
    assert by_id["multi"]["status"].tolist() == ["ok"] * 3 and by_id["multi"]["allele"].tolist() == [1, 2, 3]
    for vid, status in [
        ("mismatch", "ref_mismatch"),
        ("symbolic", "symbolic_allele"),
        ("unknown", "unknown_chrom"),
        ("noalt", "missing_alt"),
    ]:
        assert by_id[vid]["status"].tolist() == [status]
        assert by_id[vid][["llr", "embedding_cosine"]].isna().all().all()
    assert scores.loc[scores["status"] == "ok", "llr"].notna().all()

    for out in (tmp_path / "out.vcf", tmp_path / "out.vcf.gz"):
        write_variant_scores(scores, out, source=vcf, genome=genome)
        with pysam.VariantFile(str(out)) as vf:
            recs = list(vf)
        assert [r.id for r in recs] == [
            line.split("\t")[2]
            for line in (
                lines
                if out.suffix == ".vcf"
                else sorted(
                    lines,
                    key=lambda x: (x.split("\t")[0] == "chrUn", x.split("\t")[0], int(x.split("\t")[1])),
                )
            )
        ]
        got = {r.id: r for r in recs}
        assert got["multi"].info["DNALM_STATUS"] == ("ok", "ok", "ok")
        np.testing.assert_allclose(
            got["multi"].info["DNALM_LLR"], by_id["multi"]["llr"], rtol=1e-5, atol=1e-9
        )
        assert got["mismatch"].info["DNALM_STATUS"] == ("ref_mismatch",)
        assert got["mismatch"].info["DNALM_LLR"] == (None,)
        assert got["unknown"].info["DNALM_STATUS"] == ("unknown_chrom",)
        assert got["symbolic"].info["DNALM_STATUS"] == ("symbolic_allele",)
        assert got["noalt"].info["DNALM_STATUS"] == ("missing_alt",)
        assert got["lower"].info["DP"] == 3 and got["lower"].filter.keys() == ["PASS"]  # input fields kept
    with pysam.VariantFile(str(tmp_path / "out.vcf.gz")) as vf:  # the tabix index works
        assert [r.id for r in vf.fetch("chr1", 100, 140)] == ["lower", "multi"]


def test_table_input_to_vcf(model, genome, tmp_path):
    table = variant_table(genome)
    table.insert(2, "id", [f"v{i}" for i in range(len(table))])
    table.loc[len(table)] = ["chr9", 5, "x9", "A", "C"]
    tsv = tmp_path / "v.tsv"
    table.to_csv(tsv, sep="\t", index=False)
    scores = score_variants(model, genome, tsv, window=16, progress=False)
    write_variant_scores(scores, tmp_path / "o.vcf", source=tsv, genome=genome)
    with pysam.VariantFile(str(tmp_path / "o.vcf")) as vf:
        recs = list(vf)
    assert [r.id for r in recs] == table["id"].tolist()
    assert recs[-1].info["DNALM_STATUS"] == ("unknown_chrom",)
    np.testing.assert_allclose([r.info["DNALM_LLR"][0] for r in recs[:-1]], scores["llr"][:-1], rtol=1e-5)


# ------------------------------------------------------------------------------------------- real data + CLI
def test_celegans_vcf_cli(celegans_dir, tmp_path):
    fasta, vcf = celegans_dir / "C.elegans.fa.gz", celegans_dir / "C.elegans.variants.vcf.gz"
    # the whole VCF (8,713 records, 10 REF mismatches) through a one-layer model with short windows
    small = vcf
    model_dir = tmp_path / "model"
    tiny(d_model=16, n_layer=1).save_pretrained(model_dir)
    common = [
        "--model",
        str(model_dir),
        "--fasta",
        str(fasta),
        "--input",
        str(small),
        "--window",
        "16",
        "--batch-size",
        "128",
        "--no-progress",
    ]
    assert cli_main(["score-variants", *common, "--out", str(tmp_path / "o.vcf.gz")]) == 0
    assert cli_main(["score-variants", *common, "--out", str(tmp_path / "o.tsv")]) == 0

    with pysam.VariantFile(str(tmp_path / "o.vcf.gz")) as vf:
        out = list(vf)
    with pysam.VariantFile(str(small)) as vf:
        inp = list(vf)
    assert [(r.chrom, r.pos, r.id, r.ref, r.alts) for r in out] == [
        (r.chrom, r.pos, r.id, r.ref, r.alts) for r in inp
    ]
    mismatches = [r for r in out if r.info["DNALM_STATUS"] != ("ok",)]
    genome = dnalm.Genome(fasta)
    expected = dnalm.read_variants(small, genome)
    assert sorted(r.id for r in mismatches) == sorted(expected.loc[expected.status == "ref_mismatch", "id"])
    assert len(mismatches) == 10 and all(r.info["DNALM_STATUS"] == ("ref_mismatch",) for r in mismatches)

    tsv = pd.read_csv(tmp_path / "o.tsv", sep="\t")
    api = score_variants(
        dnalm.load_model(model_dir), genome, small, window=16, batch_size=512, progress=False
    )
    np.testing.assert_allclose(tsv["llr"], api["llr"], rtol=1e-5, atol=1e-8)
    vcf_llr = np.array(
        [r.info["DNALM_LLR"][0] if r.info["DNALM_LLR"][0] is not None else np.nan for r in out]
    )
    np.testing.assert_allclose(vcf_llr, api["llr"], rtol=1e-5, atol=1e-8)
    vcf_cos = np.array(
        [r.info["DNALM_EMB_COS"][0] if r.info["DNALM_EMB_COS"][0] is not None else np.nan for r in out]
    )
    np.testing.assert_allclose(vcf_cos, api["embedding_cosine"], rtol=1e-5, atol=1e-8)


def test_cli_strict_and_bad_output(tmp_path, genome, capsys):
    model_dir = tmp_path / "model"
    tiny(d_model=16, n_layer=1).save_pretrained(model_dir)
    s1 = genome.seqs["1"]
    vcf = _write_vcf(
        tmp_path / "in.vcf",
        genome,
        [f"chr1\t10\tok\t{s1[9]}\tN\t.\t.\t.", f"chr1\t12\tbad\t{'A' if s1[11] != 'A' else 'C'}\tG\t.\t.\t."],
    )
    args = [
        "score-variants",
        "--model",
        str(model_dir),
        "--fasta",
        str(genome.path),
        "--input",
        str(vcf),
        "--window",
        "8",
        "--no-progress",
    ]
    assert cli_main([*args, "--strict", "--out", str(tmp_path / "o.vcf")]) == 2
    err = capsys.readouterr().err
    assert "record 2" in err and "ref_mismatch" in err and "Traceback" not in err
    assert not (tmp_path / "o.vcf").exists()
    assert cli_main([*args, "--out", str(tmp_path / "o.bed")]) == 2
    assert cli_main([*args, "--window", "100000", "--out", str(tmp_path / "o.vcf")]) == 2


# ------------------------------------------------------------------------------------------------------- ISM
def test_ism_matches_direct_mutants(model):
    seq = "ACGTTGCANCGGATCCATGA"
    got = ism(model, seq, batch_size=7, progress=False)
    assert got.shape == (len(seq), 4)
    np.testing.assert_allclose(ism(model, seq, reuse_prefix=False, progress=False), got, atol=1e-6)
    for i, base in enumerate(seq):
        for x, b in enumerate("ACGT"):
            if b == base:
                assert got[i, x] == 0.0
            elif i % 4 == 0 or base == "N":  # a sample of positions, and the N (four changes)
                mutant = seq[:i] + b + seq[i + 1 :]
                assert got[i, x] == pytest.approx(direct_scores(model, seq, mutant)[0], abs=1e-6)


def test_ism_strands_and_region(model, genome):
    seq = genome.seqs["1"][100:130]
    minus = ism(model, seq, strands="-", progress=False)
    rc = ism(model, reverse_complement(seq), strands="+", progress=False)
    np.testing.assert_allclose(minus, rc[::-1, ::-1], atol=1e-12)
    both = ism(model, seq, strands="both", progress=False)
    np.testing.assert_allclose(both, (minus + ism(model, seq, progress=False)) / 2, atol=1e-12)
    np.testing.assert_allclose(
        ism(model, "1:101-130", genome, progress=False), ism(model, seq, progress=False), atol=1e-9
    )
    flanked = ism(model, "1:101-130", genome, flank=5, progress=False)
    assert flanked.shape == (30, 4)
    # at a chromosome end the flank is N padding: same as scoring the padded sequence and keeping its middle
    at_start = ism(model, "chr1:1-10", genome, flank=5, progress=False)
    padded = ism(model, "NNNNN" + genome.seqs["1"][:15], progress=False)
    np.testing.assert_allclose(at_start, padded[5:15], atol=1e-6)
    with pytest.raises(InputError):
        ism(model, "1:101-130", progress=False)  # a region needs a genome


def test_ism_cli(tmp_path, genome):
    model_dir = tmp_path / "model"
    tiny(d_model=16, n_layer=1).save_pretrained(model_dir)
    out = tmp_path / "ism"
    assert (
        cli_main(
            [
                "ism",
                "--model",
                str(model_dir),
                "--fasta",
                str(genome.path),
                "--region",
                "1:11-40",
                "--flank",
                "4",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    table = pd.read_csv(out / "ism.tsv", sep="\t")
    assert list(table.columns) == ["chrom", "position", "ref", "A", "C", "G", "T", "importance"]
    assert table["position"].tolist() == list(range(11, 41))
    assert "".join(table["ref"]) == genome.seqs["1"][10:40]
    assert (table.apply(lambda r: r[r["ref"]], axis=1) == 0).all()
    with open(out / "ism.png", "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    assert cli_main(["ism", "--model", str(model_dir), "--sequence", "ACGTQ", "--out", str(tmp_path / "ism2")]) == 2


def test_cli_head_from_finetuned_dir(tmp_path, genome):
    heads = pytest.importorskip("finetune.heads")
    model_dir, head_dir = tmp_path / "model", tmp_path / "finetuned"
    backbone = tiny(d_model=16, n_layer=1)
    backbone.save_pretrained(model_dir)
    torch.manual_seed(1)
    heads.SequenceModel(backbone, heads.HeadConfig(kind="regression", num_outputs=1)).save_pretrained(
        head_dir
    )
    df = variant_table(genome)
    vcf = _write_vcf(
        tmp_path / "in.vcf",
        genome,
        [f"chr{c}\t{p}\t.\t{r}\t{a}\t.\t.\t." for c, p, r, a in df.itertuples(index=False)],
    )
    assert (
        cli_main(
            [
                "score-variants",
                "--model",
                str(model_dir),
                "--fasta",
                str(genome.path),
                "--input",
                str(vcf),
                "--head",
                str(head_dir),
                "--window",
                "16",
                "--out",
                str(tmp_path / "o.vcf"),
                "--no-progress",
            ]
        )
        == 0
    )
    with pysam.VariantFile(str(tmp_path / "o.vcf")) as vf:
        got = np.array([r.info["DNALM_HEAD"][0] for r in vf])
    clf = heads.SequenceModel.load(head_dir)
    api = score_variants(
        dnalm.load_model(model_dir), genome, vcf, window=16, scores=("llr",), head=clf, progress=False
    )
    np.testing.assert_allclose(got, api["head"], rtol=1e-5, atol=1e-8)
    assert np.abs(got).max() > 0
    # by hand: predict(ALT window) - predict(REF window), mean over both strands
    c, p, r, a = df.iloc[0]
    deltas = []
    for strand in "+-":
        ref_w, alt_w = variant_windows(genome, c, p, r, a, 16, strand)
        ids = torch.tensor([TOK.encode(ref_w), TOK.encode(alt_w)])
        y = clf.predict(ids, torch.ones_like(ids)).reshape(-1)
        deltas.append(float(y[1] - y[0]))
    assert got[0] == pytest.approx(np.mean(deltas), rel=1e-5)


def test_reuse_batches_keep_sites_together(genome):
    from dnalm.variants.scoring import _reuse_batches
    from dnalm.variants.windows import make_pair

    sites = [("1", pos) for pos in range(40, 240, 10)]
    pairs = []
    for chrom, pos in sites:  # every site with its three ALTs, on both strands
        ref = genome.seqs[chrom][pos - 1]
        for alt in "ACGT".replace(ref, ""):
            for strand in "+-":
                pairs.append(make_pair(TOK, *variant_windows(genome, chrom, pos, ref, alt, 20, strand)))
    for batch_size in (1, 3, 4, 8):
        batches = list(_reuse_batches(pairs, batch_size))
        assert sorted(i for b in batches for i in b) == list(range(len(pairs)))  # each pair exactly once
        for b in batches:
            assert len({pairs[i].split for i in b}) == 1
            rows = {(pairs[i].ref[: pairs[i].split].tobytes(), seq[pairs[i].split :].tobytes())
                    for i in b for seq in (pairs[i].ref, pairs[i].alt)}
            assert len(rows) <= 2 * batch_size  # as many rows as a from-scratch batch
        # a site's three ALTs on one strand share a batch whenever they fit
        if batch_size >= 3:
            where = {i: k for k, b in enumerate(batches) for i in b}
            for s in range(len(sites)):
                for strand in range(2):
                    members = [6 * s + 2 * a + strand for a in range(3)]
                    assert len({where[i] for i in members}) == 1
