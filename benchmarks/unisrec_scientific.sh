#!/usr/bin/env bash
# UniSRec on Scientific (benchmarks/results/Scientific.md, Office+Instruments+Games.md, Scientific-UniSRec-sweep.md),
# one run after another on 2 CPU cores (about 3 hours in all):
#   1. from scratch: inductive (text only) and transductive (text + ID), sequence training (a loss at every position),
#      and inductive with RecBole's prefix rows, 900 s training budget each;
#   2. cold start (cold_start_items=0.1: a seeded 10% of the items never in training, kept in valid/test):
#      gSASRec, UniSRec inductive and stock SASRec, seen / unseen test targets in the table;
#   3. pretraining on Office + Instruments + Games (prefix rows, in-batch InfoNCE, bf16 autocast), then on Scientific:
#      zero-shot (epochs=0) and inductive finetuning from the pretrained weights;
#   3b. inductive from scratch again with a 1200 s budget; long_prior: the same with popularity_prior=auto (β chosen
#       on validation after training: the prior's comparison with Recformer's);
#   4. an 8-trial ASHA sweep of properties/tune/UniSRec.yaml.
# Steps can be run alone: bash benchmarks/unisrec_scientific.sh [scratch|cold|long|long_prior|pretrain|sweep]...
set -euo pipefail
cd "$(dirname "$0")/.."
B="python benchmarks/run.py"
R="--stopping_step=5 --time_budget_s=900 --show_progress=False"
PRE=Office+Instruments+Games
scratch() {
  $B --dataset Scientific --models UniSRec --label_suffix=-inductive -- --train_stage=inductive_ft $R
  $B --dataset Scientific --models UniSRec --label_suffix=-transductive -- --train_stage=transductive_ft $R
  $B --dataset Scientific --models UniSRec --label_suffix=-inductive-prefix -- --train_stage=inductive_ft --train_strategy=prefix $R
}
cold() {
  C="--cold_start_items=0.1"
  $B --dataset Scientific --models gSASRec --label_suffix=-cold -- $C --num_negatives=1024 --stopping_step=30 --time_budget_s=300 --show_progress=False
  $B --dataset Scientific --models UniSRec --label_suffix=-inductive-cold -- $C --train_stage=inductive_ft $R
  $B --dataset Scientific --models SASRec --label_suffix=-cold -- $C --stopping_step=5 --time_budget_s=600 --show_progress=False
}
inductive_1200() {  # $1 label suffix, then overrides
  local suffix=$1; shift
  $B --dataset Scientific --models UniSRec --label_suffix=$suffix -- --train_stage=inductive_ft \
     --stopping_step=5 --time_budget_s=1200 --show_progress=False "$@"
}
long() {  # the inductive run of scratch() was stopped by its 900 s budget with validation still rising
  inductive_1200 -inductive-long
}
long_prior() {
  inductive_1200 -inductive-long-prior --popularity_prior=auto
}
pretrain() {
  $B --dataset $PRE --models UniSRec --label_suffix=-pretrain --baseline=UniSRec-pretrain -- --train_stage=pretrain \
     --train_strategy=prefix --MAX_ITEM_LIST_LENGTH=20 --train_batch_size=1024 --enable_amp=True \
     --stopping_step=3 --time_budget_s=1200 --show_progress=False
  CKPT=$(python -c "import json; print(json.load(open('benchmarks/runs/$PRE-UniSRec-pretrain.json'))['checkpoint'])")
  $B --dataset Scientific --models UniSRec --label_suffix=-zero-shot -- --train_stage=inductive_ft --pretrained=$CKPT --epochs=0
  $B --dataset Scientific --models UniSRec --label_suffix=-inductive-pretrained -- --train_stage=inductive_ft --pretrained=$CKPT \
     --stopping_step=5 --time_budget_s=600 --show_progress=False
}
sweep() {
  python benchmarks/tune_sweep.py --model UniSRec --dataset Scientific --num_samples 8 --epochs 4 --grace_period 1 \
     --reduction_factor 2 -- --stopping_step=4
}
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(scratch cold long pretrain sweep)
for step in "${steps[@]}"; do $step; done
