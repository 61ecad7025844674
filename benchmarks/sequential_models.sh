#!/usr/bin/env bash
# The gSASRec / RSS benchmark of benchmarks/results/{Scientific,ml-100k-text}.md, one run after another
# (sequential, so every run has the machine to itself): gSASRec and SeqSASRec-RSS under a 300 s training budget,
# gSASRec t=0.75 vs t=0 calibration on ml-100k-text, then the stock RecBole SASRec (1500 s budget) and BERT4Rec
# (600 s) baselines. About 105 minutes on 2 CPU cores.
# Scientific's gSASRec uses k=1024 negatives (best validation NDCG@10 of k in {256, 1024, 2048}: 0.0626, 0.0641,
# 0.0623; dropout 0.2 beat 0.35 and 0.5 at k=1024: 0.0626, 0.0607).
# Nothing else may run meanwhile: the time-to-reach figures are wall times.
set -euo pipefail
cd "$(dirname "$0")/.."
B="python benchmarks/run.py"
R="--stopping_step=30 --time_budget_s=300"
$B --dataset Scientific --models gSASRec -- --num_negatives=1024 $R
$B --dataset Scientific --models SeqSASRec --label_suffix=-RSS -- --train_strategy=rss --rss_pct=0.5 $R
$B --dataset ml-100k-text --models gSASRec -- $R --calibration_report=True
$B --dataset ml-100k-text --models gSASRec --label_suffix=-t0 -- --gbce_t=0 $R --calibration_report=True
python benchmarks/calibration.py --dataset ml-100k-text --labels gSASRec gSASRec-t0
$B --dataset ml-100k-text --models SeqSASRec --label_suffix=-RSS -- --train_strategy=rss --rss_pct=0.5 $R
$B --dataset Scientific --models SASRec -- --stopping_step=5 --time_budget_s=1500
$B --dataset ml-100k-text --models SASRec -- --stopping_step=5 --time_budget_s=1500
$B --dataset Scientific --models BERT4Rec -- --stopping_step=5 --time_budget_s=600
$B --dataset ml-100k-text --models BERT4Rec -- --stopping_step=5 --time_budget_s=600
