"""The command line behind ``run_recbole_text.py`` (works like RecBole's ``run_recbole.py``)."""
from __future__ import annotations

import argparse
import json
import sys

from recbole_text.config import parse_value

EPILOG = """\
Any other option is a RecBole/recbole_text setting written --key=value; it overrides the YAML files.
Merge order: RecBole defaults < properties/overall.yaml < properties/model/<MODEL>.yaml
             < properties/dataset/<DATASET>.yaml < --config_files < --key=value.
Common settings (defaults from properties/overall.yaml):
  --epochs=300               maximum training epochs
  --stopping_step=10         early stopping patience (validations without improvement)
  --train_batch_size=2048    training batch size
  --eval_batch_size=4096     evaluation batch size
  --learning_rate=0.001      Adam learning rate
  --MAX_ITEM_LIST_LENGTH=50  most recent items a sequential model sees
  --metrics="[Recall,NDCG,MRR]" --topk="[10,50]" --valid_metric=NDCG@10
  --exclude_seen_items=True  drop the user's history items from the full ranking
  --data_path=dataset/data   folder holding <DATASET>/ (the atomic files)
  --checkpoint_dir=saved     where checkpoints go (state_dict + plain config)
  --benchmark_filename="[train,valid,test]"  use pre-split <DATASET>.<part>.inter files
  --seed=2020 --gpu_id=0 --use_gpu=True --show_progress=True
  Model settings: see properties/model/<MODEL>.yaml or RecBole's own model YAML.

Datasets: ml-100k-text is built from RecBole's wheel on first use. Others come from a converter:
  python -m recbole_text.data.converters unisrec --src ../shared/data/Scientific --out dataset/data
  python -m recbole_text.data.converters amazon2018 --meta meta_X.json.gz --reviews X_5.json.gz --name X
Examples:
  python run_recbole_text.py          # no arguments: SASRec on ml-100k-text for 2 epochs (a few minutes)
  python run_recbole_text.py --model=SASRec --dataset=Scientific --epochs=2
  python run_recbole_text.py --model=BERT4Rec --dataset=ml-100k-text --config_files="a.yaml b.yaml"
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run_recbole_text.py",
        description="Train and evaluate a sequential recommender (this package's or any RecBole built-in) "
        "with RecBole's trainer and evaluator, then print the test metrics.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", "-m", default="SASRec", help="model name, e.g. SASRec, BERT4Rec, GRU4Rec "
                        "(this package's models first, then RecBole's). Default: SASRec")
    parser.add_argument("--dataset", "-d", default="ml-100k-text", help="dataset name (a folder under "
                        "data_path). Default: ml-100k-text, the embedded default")
    parser.add_argument("--config_files", default="", help='space-separated YAML files, e.g. "a.yaml b.yaml"')
    parser.add_argument("--resume", default=None, metavar="CHECKPOINT", help="continue training from a "
                        "checkpoint of the same model")
    parser.add_argument("--result_file", default=None, metavar="JSON", help="also write the run record "
                        "(metrics, epochs, timings, peak memory) here, and its training curve beside it")
    parser.add_argument("--list_models", action="store_true", help="print the model names and exit")
    return parser


def parse_overrides(extra: list[str]) -> dict:
    """``["--epochs=2", "--topk=[10,50]"]`` → ``{"epochs": 2, "topk": [10, 50]}``."""
    overrides = {}
    for arg in extra:
        if not arg.startswith("--") or "=" not in arg:
            raise SystemExit(f"error: unrecognized argument {arg!r}; settings are written --key=value")
        key, _, value = arg[2:].partition("=")
        overrides[key] = parse_value(value)
    return overrides


# With no arguments at all: the embedded default, short enough for a few minutes on 2 CPU cores.
NO_ARGUMENT_RUN = {"epochs": 2}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    overrides = dict(NO_ARGUMENT_RUN) if not argv else {}
    overrides.update(parse_overrides(extra))

    from recbole_text import registry
    from recbole_text.compat import CheckpointError, PickleRefusedError
    from recbole_text.config import ConfigError
    from recbole_text.data.atomic import AtomicFileError
    from recbole_text.quick_start import run

    if args.list_models:
        print("recbole_text:", " ".join(sorted(registry.package_models())) or "(none)")
        print("RecBole:", " ".join(registry.recbole_model_modules()))
        return 0
    try:
        result = run(
            model=args.model,
            dataset=args.dataset,
            config_file_list=args.config_files.split() or None,
            config_dict=overrides,
            resume=args.resume,
            result_file=args.result_file,
        )
    except (FileNotFoundError, AtomicFileError, CheckpointError, ConfigError, PickleRefusedError,
            registry.UnknownModelError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print_metrics(result)
    return 0


def print_metrics(result: dict) -> None:
    print(f"\n{result['model']} on {result['dataset']}: {result['epochs_run']} epochs, "
          f"best epoch {result['best_epoch']}, {result['wall_time_s']:.1f} s")
    print("best valid: " + json.dumps({k: round(v, 4) for k, v in result["best_valid_result"].items()}))
    print("test:       " + json.dumps({k: round(v, 4) for k, v in result["test_result"].items()}))
