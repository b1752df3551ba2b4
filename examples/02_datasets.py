"""Datasets for pretraining and fine-tuning, on the demo yeast genome.

1. ``GenomeWindows``: random 1 kbp pretraining windows with chromosome-level splits and reverse-complement
   augmentation, batched by a 2-worker DataLoader; then the validation chromosome tiled for evaluation;
2. ``IntervalDataset``: 1 kbp windows centred on each gene's transcription start (strand-aware), labelled by
   the gene's biotype (class names mapped to ids);
3. ``SequenceTable``: a GUE-style ``sequence,label`` CSV (DNABERT-2's sample data from ``$DNALM_DATA``).

Run: ``python examples/02_datasets.py [OUT_DIR] [--samples N]`` (default: a temporary folder, 256 windows).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pandas as pd
from torch.utils.data import DataLoader

from data_prep.genome import prepare_demo_yeast
from dnalm import GenomeWindows, IntervalDataset, SequenceTable, read_bed
from dnalm.utils import data_dir


def main(out_dir: Path, samples: int) -> None:
    prepared = prepare_demo_yeast(out_dir)  # about 5 s the first time; reused afterwards

    # 1. pretraining windows: chrXVI held out for validation, chrXV for test, the rest for training
    splits = {"validation": ["chrXVI"], "test": ["XV"]}  # aliases work: XV == chrXV
    train = GenomeWindows(
        prepared.fasta, 1024, split="train", splits=splits, rc_prob=0.5, num_samples=samples, seed=0
    )
    for name, part in train.describe()["splits"].items():
        print(f"{name:<11}{part['n_chromosomes']:>3} chromosomes {part['bp']:>12,} bp")
    loader = DataLoader(train, batch_size=32, num_workers=2, collate_fn=train.collate)
    n_minus = 0
    for batch in loader:
        n_minus += sum(s == "-" for s in batch["strand"])
    print(
        f"train: {samples} random windows per epoch, batch input_ids {tuple(batch['input_ids'].shape)}, "
        f"{n_minus} reverse complemented; call train.set_epoch(e) for new windows each epoch"
    )

    val = GenomeWindows(prepared.fasta, 1024, mode="tiled", split="validation", splits=splits)
    desc = val.describe()
    kept = sum(1 for _ in val)
    print(
        f"validation (tiled): {desc['windows']} windows "
        f"({desc['tiles_partial']} N-padded at the chromosome end), "
        f"{kept} kept, {val.stats['skipped_n']} skipped for > 10% N"
    )

    # 2. windows centred on transcription starts, labelled by biotype
    genes = read_bed(prepared.genes_bed)
    tss = genes["start"].where(genes["strand"] == "+", genes["end"] - 1)
    table = pd.DataFrame(
        {
            "chrom": genes["chrom"],
            "start": tss,
            "end": tss + 1,
            "strand": genes["strand"],
            "label": genes["biotype"],
        }
    )
    promoters = IntervalDataset(table, prepared.fasta, length=1000)
    print(f"\n{len(promoters):,} TSS windows; classes {promoters.label_to_id}")
    item = promoters[0]
    print(
        f"first: {item['chrom']}:{item['start']}-{item['end']} ({item['strand']}), "
        f"label {int(item['labels'])}"
    )

    # 3. a GUE-style CSV
    csv = data_dir() / "dnabert2_sample_data" / "train.csv"
    if csv.exists():
        table = SequenceTable(csv)
        batch = table.collate([table[i] for i in range(4)])
        print(
            f"\n{csv}: {len(table)} sequences, {table.num_classes} classes; "
            f"batch {tuple(batch['input_ids'].shape)}, "
            f"labels {batch['labels'].tolist()}"
        )
    else:
        print(f"\n{csv} not found (set DNALM_DATA); skipping the SequenceTable part")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="dnalm datasets tour")
    parser.add_argument("out_dir", nargs="?", help="folder for the demo genome (default: temporary)")
    parser.add_argument("--samples", type=int, default=256, help="random training windows per epoch")
    args = parser.parse_args()
    if args.out_dir:
        main(Path(args.out_dir), args.samples)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp), args.samples)
