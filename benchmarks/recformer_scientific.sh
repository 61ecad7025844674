#!/usr/bin/env bash
# Recformer benchmarks on 2 CPU cores, one run after another (about 2.5 hours in all):
#   main     the used-by command on Scientific (UniSRec's split), the CPU profile of Recformer.yaml:
#            python run_recbole_text.py --model=Recformer --dataset=Scientific  (5 + 2 epochs planned into
#            train_budget_s = 55 min; row Recformer-hour of results/Scientific.md)
#   hour_auto  the used-by command again on the profile of 2026-12-08 (popularity_prior: auto; row Recformer-hour-auto)
#   amx      on an AMX machine: the used-by command (row Recformer-hour-amx) and one 128-token epoch, the
#            same-machine comparison for the tokens step (row Recformer-1-epoch-amx)
#   full     the same without the time plan: all 5 + 2 epochs (row Recformer)
#   attributes  one epoch with title + brand only (row Recformer-title-brand-1-epoch)
#   learning_rate  one epoch at learning rate 2e-4 (row Recformer-lr2e-4-1-epoch)
#   temperature  one epoch at τ 0.1 and one at τ 0.03 (rows Recformer-tau0.1-1-epoch, Recformer-tau0.03-1-epoch)
#   tokens   one epoch at 256 tokens (about 6 history items instead of 3; row Recformer-256-tokens-1-epoch)
#   cpu      item-table items/s, s/step at 128 and 256 tokens, evaluation sequences/s, fp32 vs bf16 autocast
#            (results/recformer-cpu.md)
#   own      Recformer's own split (Scientific-Recformer, 11,041 users): gSASRec, stock SASRec and Recformer
#            (2 + 1 epochs: the CPU profile's 5 + 2 did not fit the sitting; results/Scientific-Recformer.md)
#   own_hour the used-by CPU profile on Recformer's own split (row Recformer-hour of results/Scientific-Recformer.md)
#   pretrain pretraining on Office + Instruments + Games (sampled prefixes, 300 batches of 16: what a sitting
#            allows, not the paper's 32 epochs), then zero-shot on Scientific (results/Office+Instruments+Games.md,
#            results/Scientific.md)
#   finetune pretraining as above but 400 batches, then one finetuning epoch on Scientific from that checkpoint
#            (no stage 2: what the sitting allowed), then zero-shot from it: "with and without pretraining"
#            (results/Scientific.md), and the same finetuning epoch from the MiniLM backbone: "without"
#   pretrain_long  pretraining as above but 2,000 batches (~44% of an O+I+G epoch), then zero-shot on Scientific
#   prefix   every prefix → next item (RecBole's rows, ~4x the RSS rows per epoch) instead of one RSS target per
#            user, 4 + 1 epochs planned into 110 min (row Recformer-prefix)
#   prefix_long  the same, 5 + 1 epochs planned into 135 min (row Recformer-prefix-long)
#   prefix_epoch  one epoch of prefix rows, no stage 2 (row Recformer-prefix-1-epoch)
#   grouped_epoch  the same with length-grouped batches (group_by_length; row Recformer-prefix-grouped-1-epoch)
#   grouped_tokens  grouped_epoch at 256 tokens instead of 128 (row Recformer-prefix-grouped-256-tokens-1-epoch)
#   prefix_full  every prefix row, length-grouped, all 5 + 2 epochs without a time plan (~6 h in fp32 on AVX2, ~2 h
#            on the Xeon): resumable over sittings, RESUME=<its resume point> continues it (row Recformer-prefix-full)
#   prefix_full_stage2  CKPT=<prefix_full's best checkpoint>: one stage-2 epoch from it, stage 1 not redone
#            (row Recformer-prefix-full-stage2)
#   logit_adjusted_stage2  CKPT=<prefix_full's best checkpoint>: prefix_full_stage2 with the prior in the training
#            loss (train_popularity_prior=0.75) and popularity_prior=auto (row Recformer-prefix-full-stage2-logit-adjusted)
#   prior    CKPT=<a finetuned checkpoint> (default prefix_full_stage2's): popularity_prior=auto, β chosen on
#            validation, no training (row Recformer-prefix-full-stage2-prior)
#   hour_prior  CKPT=<the main step's checkpoint>: the same on the used-by run's weights (row Recformer-hour-prior)
#   pretrained_prefix  pretraining as in pretrain_long, then prefix_long's finetuning from that checkpoint: "with
#            and without pretraining" at the best finetuning recipe (row Recformer-pretrained-prefix-long)
#   backbone_zero_shot  the MiniLM backbone as it is, no pretraining and no finetuning (row Recformer-backbone-zero-shot)
#   pooling  one epoch with mean pooling instead of h_[CLS] (recformer_pooling=mean; row Recformer-mean-1-epoch)
#   seed     the 1-epoch row again with another seed (row Recformer-1-epoch-seed2): how far apart one epoch's
#            figures fall by chance, to read the 1-epoch comparisons by
#   attention_dropout  one epoch without dropout on the attention probabilities (its masks are ~10-15% of an fp32
#            step; row Recformer-no-attention-dropout-1-epoch)
#   grouped_attention_dropout  grouped_epoch without attention dropout: the same check over 2,132 steps instead of
#            528 (row Recformer-prefix-grouped-no-attention-dropout-1-epoch)
#   cold     the cold-start protocol of the UniSRec benchmarks (a seeded 10% of the items held out of training,
#            kept in valid/test), 1 + 1 epochs: what a sitting allows in fp32 (results/Scientific.md, seen/unseen)
# Steps can be run alone: bash benchmarks/recformer_scientific.sh [main|hour_auto|amx|full|attributes|learning_rate|temperature|tokens|cpu|own|own_hour|pretrain|finetune|pretrain_long|prefix|prefix_long|prefix_epoch|grouped_epoch|grouped_tokens|prefix_full|prefix_full_stage2|logit_adjusted_stage2|prior|hour_prior|pretrained_prefix|backbone_zero_shot|pooling|seed|attention_dropout|grouped_attention_dropout|cold]...
set -euo pipefail
cd "$(dirname "$0")/.."
B="python benchmarks/run.py"
PRE=Office+Instruments+Games
[ -d dataset/data/Scientific-Recformer ] || python -m recbole_text.data.converters recformer \
  --src ../shared/data/Scientific-Recformer --out dataset/data
# The rows recorded before 2026-12-07 ran under the RSS profile: steps that compare with them pin its batches and
# attention dropout, and its rows where they set none of their own (a step's own overrides come after and win)
RSS_BATCHES="--group_by_length=False --attention_dropout=~"
RSS_PROFILE="--train_strategy=rss $RSS_BATCHES"
used_by() {  # $1 label suffix: the used-by command as a user types it, its 5 + 2 epochs planned into train_budget_s
  $B --dataset Scientific --models Recformer --label_suffix=$1
}
main() {
  used_by -hour
}
hour_auto() {  # the used-by command once its profile chose the popularity prior itself (popularity_prior: auto)
  used_by -hour-auto
}
full() {  # the CPU profile's 5 + 2 epochs without the time plan
  $B --dataset Scientific --models Recformer -- --train_budget_s=~
}
cpu() {
  python benchmarks/recformer_cpu.py --tokens 128 256
}
own() {
  $B --dataset Scientific-Recformer --models gSASRec -- --num_negatives=1024 --stopping_step=30 --time_budget_s=300 \
     --show_progress=False
  $B --dataset Scientific-Recformer --models SASRec -- --stopping_step=5 --time_budget_s=600 --show_progress=False
  $B --dataset Scientific-Recformer --models Recformer -- $RSS_PROFILE --epochs=2 --stage2_epochs=1
}
own_hour() {  # the used-by CPU profile (prefix rows, 5 + 2 epochs planned into 55 min) on Recformer's own split
  $B --dataset Scientific-Recformer --models Recformer --label_suffix=-hour
}
pretrain_sources() {  # $1 batches, $2 label suffix: pretraining on $PRE, its checkpoint in CKPT
  $B --dataset $PRE --models Recformer --label_suffix=$2 --baseline=UniSRec-pretrain -- $RSS_BATCHES --train_stage=pretrain \
     --train_strategy=sampled_prefix --max_steps=$1 --epochs=1 --eval_step=0
  CKPT=$(python -c "import json; print(json.load(open('benchmarks/runs/$PRE-Recformer$2.json'))['checkpoint'])")
}
zero_shot() {  # $1 label suffix
  $B --dataset Scientific --models Recformer --label_suffix=$1 -- --pretrained=$CKPT --epochs=0
}
one_epoch() {  # $1 label suffix, then overrides: one finetuning epoch on Scientific without stage 2
  local suffix=$1; shift
  $B --dataset Scientific --models Recformer --label_suffix=$suffix -- $RSS_PROFILE --epochs=1 --finetune_stage2=False \
     "$@"
}
pretrain_then_zero_shot() {  # $1 batches, $2 label tag: rows $PRE-Recformer-pretrain$2, Recformer-zero-shot$2
  pretrain_sources $1 -pretrain$2
  zero_shot -zero-shot$2
}
pretrain() {
  pretrain_then_zero_shot 300 ""
}
finetune() {
  pretrain_sources 400 -pretrain-400
  one_epoch -pretrained-400 --pretrained=$CKPT
  zero_shot -zero-shot-400
  one_epoch -1-epoch
}
pretrain_long() {
  pretrain_then_zero_shot 2000 -2000
}
attributes() {  # one epoch with title + brand only: more history items in 128 tokens, less text per item
  one_epoch -title-brand-1-epoch --recformer_attributes=title,brand
}
learning_rate() {  # one epoch at twice the profile's learning rate
  one_epoch -lr2e-4-1-epoch --learning_rate=0.0002
}
temperature() {  # one epoch at τ = 0.1 and at τ = 0.03 around the paper's 0.05
  one_epoch -tau0.1-1-epoch --temperature=0.1
  one_epoch -tau0.03-1-epoch --temperature=0.03
}
tokens() {  # one epoch at 256 tokens: the reference says 128 "loses clearly" against 256-1024
  one_epoch -256-tokens-1-epoch --max_token_num=256
}
amx() {  # the rows of an AMX machine
  used_by -hour-amx
  one_epoch -1-epoch-amx
}
prefix_rows() {  # $1 label suffix, $2 stage-1 epochs, $3 train_budget_s, then overrides: every prefix row,
  local suffix=$1 epochs=$2 budget=$3; shift 3  # + 1 stage-2 epoch
  $B --dataset Scientific --models Recformer --label_suffix=$suffix -- $RSS_BATCHES --train_strategy=prefix --epochs=$epochs \
     --stage2_epochs=1 --train_budget_s=$budget "$@"
}
prefix_epoch() {  # one epoch of prefix rows without stage 2: its time measured where it was only estimated
  one_epoch -prefix-1-epoch --train_strategy=prefix
}
grouped_epoch() {  # prefix_epoch with batches of rows of similar width: the time padding took
  one_epoch -prefix-grouped-1-epoch --train_strategy=prefix --group_by_length=True
}
grouped_tokens() {  # grouped_epoch at 256 tokens: prefix rows have longer histories than the RSS rows of tokens
  one_epoch -prefix-grouped-256-tokens-1-epoch --train_strategy=prefix --group_by_length=True --max_token_num=256
}
prefix_full() {  # prefix_long's rows without the budget, over as many sittings as it takes
  $B --dataset Scientific --models Recformer --label_suffix=-prefix-full -- --train_strategy=prefix \
     --group_by_length=True --stage2_epochs=2 --train_budget_s=~ ${RESUME:+--resume=$RESUME}
}
prefix_full_stage2() {  # one stage-2 epoch from prefix_full's best checkpoint CKPT (its stage 2 ran at learning
  local from=saved/Recformer-prefix-full-stage1.pth  # rate 0, fixed in e22ec07); a copy is resumed, CKPT is kept
  cp "$CKPT" $from  # --epochs=1: any checkpoint's epoch + 1 is at least 1, so no stage-1 epoch is left
  $B --dataset Scientific --models Recformer --label_suffix=-prefix-full-stage2 -- --train_strategy=prefix \
     --group_by_length=True --epochs=1 --stage2_epochs=1 --train_budget_s=~ --resume=$from
}
logit_adjusted_stage2() {  # prefix_full_stage2 with train_popularity_prior=0.75 (the β auto chose for its weights):
  local from=saved/Recformer-logit-adjusted-stage1.pth  # the stage-2 epoch learns what popularity leaves
  cp "${CKPT:?set CKPT to prefix_full s best checkpoint}" $from
  $B --dataset Scientific --models Recformer --label_suffix=-prefix-full-stage2-logit-adjusted -- --train_strategy=prefix \
     --group_by_length=True --epochs=1 --stage2_epochs=1 --train_budget_s=~ --resume=$from \
     --train_popularity_prior=0.75 --popularity_prior=auto
}
prior_row() {  # $1 a finetuned checkpoint, $2 label suffix: popularity_prior=auto (β chosen on validation), no training
  $B --dataset Scientific --models Recformer --label_suffix=$2 -- --epochs=0 --resume=$1 --popularity_prior=auto
}
prior() {  # on CKPT, default prefix_full_stage2's (kept as saved/Recformer-prefix-full-stage2.pth)
  prior_row "${CKPT:-saved/Recformer-prefix-full-stage2.pth}" -prefix-full-stage2-prior
}
hour_prior() {  # on the used-by run's checkpoint (CKPT, from the main step): what auto adds to the used-by command
  prior_row "${CKPT:?set CKPT to the checkpoint of the main step}" -hour-prior
}
prefix() {  # the training data UniSRec, SASRec and gSASRec see
  prefix_rows -prefix 4 6600
}
prefix_long() {  # the same rows, longer: prefix's validation was still rising when its budget ended it
  prefix_rows -prefix-long 5 8100
}
pretrained_prefix() {  # prefix_long from the 2,000-batch pretrained checkpoint (the pretraining row is rewritten)
  pretrain_sources 2000 -pretrain-2000
  prefix_rows -pretrained-prefix-long 5 8100 --pretrained=$CKPT
}
backbone_zero_shot() {  # what pretraining's zero-shot rows are measured against
  $B --dataset Scientific --models Recformer --label_suffix=-backbone-zero-shot -- --epochs=0
}
pooling() {  # MiniLM is a mean-pooled sentence encoder: does its mean train better than its [CLS] state?
  one_epoch -mean-1-epoch --recformer_pooling=mean
}
seed() {
  one_epoch -1-epoch-seed2 --seed=2
}
attention_dropout() {
  one_epoch -no-attention-dropout-1-epoch --attention_dropout=0
}
grouped_attention_dropout() {
  one_epoch -prefix-grouped-no-attention-dropout-1-epoch --train_strategy=prefix --group_by_length=True \
     --attention_dropout=0
}
cold() {
  $B --dataset Scientific --models Recformer --label_suffix=-cold -- $RSS_PROFILE --cold_start_items=0.1 --epochs=1 \
     --stage2_epochs=1
}
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(main cpu own pretrain)
for step in "${steps[@]}"; do $step; done
