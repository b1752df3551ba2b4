#!/usr/bin/env bash
# The whole conditional-CRE chain on a real data set, printing the numbers of each step:
#   train-oracle -> finetune-generator (from a pretrained model) -> generate N per lowest/highest class -> evaluate-cre
#
# usage: benchmarks/cre_chain.sh yeast|mpra
# env:   MODEL (default runs/demo_pretrain/model; a preset name trains from random init), OUT (results/cre_<set>),
#        STEPS (generator steps, default 1000), BATCH (32), LR (2e-3), GUIDANCE (sampling guidance weight, 0), ORACLE_EPOCHS (12), NUM (200), BINS (5), THREADS (1),
#        DNALM_DATA (../shared/data), DNALM (the dnalm command)
# CPU cost on 2 shared cores (yeast, demo hybridna-tiny): oracle ~1.5 min, generator 1000 steps ~33 min, generation
# and evaluation ~1 min. With 300 steps the demo model had not yet picked up the condition (oracle means equal).
set -euo pipefail
SET=${1:?usage: cre_chain.sh yeast|mpra}
DATA_DIR=${DNALM_DATA:-../shared/data}
MODEL=${MODEL:-runs/demo_pretrain/model}
OUT=${OUT:-results/cre_$SET}
STEPS=${STEPS:-1000}
BATCH=${BATCH:-32}
LR=${LR:-2e-3}
GUIDANCE=${GUIDANCE:-0}
ORACLE_EPOCHS=${ORACLE_EPOCHS:-12}
NUM=${NUM:-200}
BINS=${BINS:-5}
THREADS=${THREADS:-1}
DNALM=${DNALM:-dnalm}
export OMP_NUM_THREADS=$THREADS

case "$SET" in
  yeast)
    TABLE=$DATA_DIR/yeast_promoter_expression/random80_pTpA_10000_with_exp_levels.txt.gz
    COLS=(--no-header --skip-rows 2 --column-names sequence,expression --sequence-column sequence)
    PROP=expression; TAX=fungi ;;
  mpra)
    TABLE=$DATA_DIR/mpra_agarwal2025/test_HepG2.tsv
    COLS=(--sequence-column seq)
    PROP=mean_value; TAX=vertebrates ;;
  *) echo "unknown data set $SET (yeast or mpra)" >&2; exit 2 ;;
esac
[ -e "$TABLE" ] || { echo "missing $TABLE (set DNALM_DATA)" >&2; exit 2; }
case "$MODEL" in */*) [ -d "$MODEL" ] || { echo "no pretrained model at $MODEL (set MODEL=DIR or a preset)" >&2; exit 2; } ;; esac
mkdir -p "$OUT"
HIGH=$((BINS - 1))

echo "== train-oracle ($TABLE)"
/usr/bin/time -f "   %e s wall" $DNALM train-oracle --input "$TABLE" "${COLS[@]}" --label-columns $PROP \
  --out "$OUT/oracle" --set max_epochs="$ORACLE_EPOCHS" --threads "$THREADS" --no-progress

echo "== finetune-generator from $MODEL ($STEPS steps max)"
/usr/bin/time -f "   %e s wall" $DNALM finetune-generator --model "$MODEL" --input "$TABLE" "${COLS[@]}" \
  --label-columns $PROP --set n_bins="$BINS" --out "$OUT/generator" --set max_steps="$STEPS" --batch-size "$BATCH" --set lr="$LR" --set eval_every=100 \
  --threads "$THREADS" --no-progress 2>&1 | grep -v -E "litlogger|LeafSpec|available:"

echo "== generate $NUM per class: $PROP=0 and $PROP=$HIGH"
/usr/bin/time -f "   %e s wall" $DNALM generate --model "$OUT/generator" --condition $PROP=0 --condition $PROP=$HIGH \
  --num "$NUM" --seed 0 --guidance "$GUIDANCE" --out "$OUT/generated.fa" --threads "$THREADS" --no-progress

echo "== evaluate-cre"
/usr/bin/time -f "   %e s wall" $DNALM evaluate-cre --generated "$OUT/generated.fa" --oracle "$OUT/oracle" \
  --reference "$TABLE" "${COLS[@]}" --motifs "$DATA_DIR/jaspar2024_core/jaspar2024_core.transfac.gz" \
  --set motif_tax_group=$TAX --out "$OUT/eval" --threads "$THREADS" --no-progress
