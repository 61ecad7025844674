"""The command line behind ``run_recbole_text.py`` (works like RecBole's ``run_recbole.py``)."""
from __future__ import annotations

import argparse
import json
import sys

import yaml

EPILOG = """\
Any other option is a RecBole/recbole_text setting written --key=value; it overrides the YAML files.
Merge order: RecBole defaults < recbole_text/properties/overall.yaml < properties/model/<MODEL>.yaml
             < properties/dataset/<DATASET>.yaml < --config_files < --key=value.
Common settings (defaults from recbole_text/properties/overall.yaml):
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
  --train_strategy=prefix    prefix (RecBole's rows) | sequence (loss at every position) | rss (recency sampling)
  --pretrained=PATH          initialise the model from a checkpoint's weights, by name (not --resume)
  --lr_scheduler=constant    constant | linear (--warmup_steps=N, then linear decay)
  --seed=2020 --gpu_id=0 --use_gpu=True --show_progress=True
  --epochs=0                 no training: evaluate the model as built (e.g. --pretrained, zero-shot)
  --cold_start_items=0.1     cold start: a seeded share of items removed from training (--cold_start_seed)
  Model settings: see properties/model/<MODEL>.yaml or RecBole's own model YAML.
Text models (UniSRec) read <DATASET>.itemtext through a frozen encoder, cached on disk:
  --plm_name=~               encoder: ~ = the packaged all-MiniLM-L6-v2, or a local folder / cached HF name
  --plm_pooling=mean         mean | cls;  --plm_max_length=128  --plm_batch_size=64
  --plm_dtype=auto           auto (bf16 where the CPU/GPU has it and agrees with fp32) | bf16 | fp32
  --text_fields=~            attributes the encoder reads, in order (~ = all), e.g. title,brand
  --text_cache_dir=~         ~ = <data_path>/<DATASET>/.text_cache
  --train_stage=inductive_ft pretrain | inductive_ft (text only) | transductive_ft (text + ID)
  --dataset=A,B,C            several datasets as one multi-domain dataset (item ids never collide)
  --profile=paper            a model's named settings file, properties/model/<MODEL>-paper.yaml (Recformer)

Datasets: ml-100k-text is built from RecBole's wheel on first use. Others come from a converter:
  python -m recbole_text.data.converters unisrec --src ../shared/data/Scientific --out dataset/data
  python -m recbole_text.data.converters amazon2018 --meta meta_X.json.gz --reviews X_5.json.gz --name X
Recommendations (new items ranked from their text with --extra_items, text models only):
  python -m recbole_text.recommend --checkpoint saved/X.pth --history "i1 i2" [--extra_items new.itemtext]
Examples:
  python run_recbole_text.py          # no arguments: gSASRec on the embedded ml-100k-text, to early stopping
  python run_recbole_text.py --model=SASRec --dataset=Scientific --epochs=2
  python run_recbole_text.py --model=gSASRec --pretrained=saved/X.pth   # start from another run's weights
  python run_recbole_text.py --model=BERT4Rec --dataset=ml-100k-text --config_files="a.yaml b.yaml"
  python run_recbole_text.py --model=UniSRec --dataset=Scientific --train_stage=transductive_ft
  python run_recbole_text.py --model=Recformer --dataset=Scientific [--profile=paper]
  python run_recbole_text.py --model=UniSRec --dataset=Office,Instruments,Games --train_stage=pretrain \
      --train_strategy=prefix      # then on Scientific: --train_stage=inductive_ft --pretrained=saved/X.pth
Ray Tune sweep (search space: properties/tune/<MODEL>.yaml unless --search_space is given):
  python run_recbole_text.py --tune --model=gSASRec --dataset=Scientific --num_samples=8 --epochs=30
  python run_recbole_text.py --tune --model=gSASRec --dataset=Scientific --resume   # continue it
Distributed data-parallel training on Ray Train (gloo on CPU, NCCL with --use_gpu):
  python run_recbole_text.py --model=SeqSASRec --dataset=Scientific --num_workers=2 [--use_gpu]
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run_recbole_text.py",
        description="Train and evaluate a sequential recommender (this package's or any RecBole built-in) "
        "with RecBole's trainer and evaluator, then print the test metrics.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", "-m", default="gSASRec", help="model name, e.g. gSASRec, SeqSASRec, SASRec, "
                        "BERT4Rec (this package's models first, then RecBole's). Default: gSASRec")
    parser.add_argument("--dataset", "-d", default="ml-100k-text", help="dataset name (a folder under "
                        "data_path). Default: ml-100k-text, the embedded default")
    parser.add_argument("--config_files", default="", help='space-separated YAML files, e.g. "a.yaml b.yaml"')
    parser.add_argument("--resume", nargs="?", const=True, default=None, metavar="CHECKPOINT",
                        help="continue an interrupted run from its resume point (saved/<run>-resume.pth, written after "
                        "every validation, any stage) or a best-model checkpoint; with --tune (no value): "
                        "continue the interrupted sweep in the experiment folder")
    parser.add_argument("--result_file", default=None, metavar="JSON", help="also write the run record "
                        "(metrics, epochs, timings, peak memory) here, and its training curve beside it")
    parser.add_argument("--list_models", action="store_true", help="print the model names and exit")

    sweep = parser.add_argument_group("Ray Tune sweeps (--tune)")
    sweep.add_argument("--tune", action="store_true", help="run a hyper-parameter sweep with Ray Tune; each "
                       "trial trains with RecBole's trainer and reports validation metrics every epoch")
    sweep.add_argument("--search_space", default=None, metavar="YAML", help="search space (choice, uniform, "
                       "loguniform, quniform, grid). Default: properties/tune/<MODEL>.yaml")
    sweep.add_argument("--num_samples", type=int, default=1, help="samples of the space (times the grid's "
                       "size). Default: 1")
    sweep.add_argument("--cpus_per_trial", type=float, default=1.0, help="CPUs Ray gives each trial. Default: 1")
    sweep.add_argument("--gpus_per_trial", type=float, default=0.0, help="GPUs Ray gives each trial (through "
                       "CUDA_VISIBLE_DEVICES; fractions share a GPU). Default: 0")
    sweep.add_argument("--scheduler", choices=("asha", "fifo"), default="asha", help="trial scheduler. "
                       "Default: asha (stops bad trials early; max epochs = --epochs)")
    sweep.add_argument("--grace_period", type=int, default=1, help="ASHA: epochs every trial runs. Default: 1")
    sweep.add_argument("--reduction_factor", type=float, default=3, help="ASHA: keep 1/this at each rung. "
                       "Default: 3")
    sweep.add_argument("--max_failures", type=int, default=2, help="retries of a crashed trial (from its last "
                       "epoch). Default: 2")
    sweep.add_argument("--include_default", action="store_true", help="also run the configured values of the "
                       "searched settings as the first trial")
    sweep.add_argument("--experiment_dir", default=None, metavar="DIR", help="where experiments go "
                       "(made absolute). Default: ./ray_results")
    sweep.add_argument("--experiment_name", default=None, metavar="NAME", help="experiment folder name. "
                       "Default: <MODEL>-<DATASET> (sweeps)")

    scale = parser.add_argument_group("Ray Train data-parallel training (--num_workers)")
    scale.add_argument("--num_workers", type=int, default=None, metavar="W", help="train on W Ray Train workers "
                       "(DistributedDataParallel; gloo on CPU, NCCL with --use_gpu: one GPU per worker)")
    scale.add_argument("--cpus_per_worker", type=float, default=1.0, help="CPUs (and torch threads) per worker. "
                       "Default: 1")
    parser.add_argument("--ray_address", default=None, metavar="ADDR", help="join this Ray cluster (e.g. "
                        "auto or HOST:6379) instead of starting a local one (for --tune and --num_workers)")
    return parser


def parse_value(text: str):
    """``--key=value`` text → Python value with YAML's safe rules (``1e-3`` is a float too); never ``eval``."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def parse_overrides(extra: list[str]) -> dict:
    """``["--epochs=2", "--topk=[10,50]"]`` → ``{"epochs": 2, "topk": [10, 50]}``."""
    overrides = {}
    for arg in extra:
        if arg == "--use_gpu":  # the bare flag (as in --num_workers=2 --use_gpu)
            overrides["use_gpu"] = True
            continue
        if not arg.startswith("--") or "=" not in arg:
            raise SystemExit(f"error: unrecognized argument {arg!r}; settings are written --key=value")
        key, _, value = arg[2:].partition("=")
        overrides[key] = parse_value(value)
    return overrides


# With no model, dataset or setting given (output options such as --result_file may be): gSASRec on the embedded
# default to early stopping, about 2 minutes on 2 CPU cores (measured in benchmarks/README.md, "The first run").
FIRST_RUN = {"stopping_step": 10}


def is_first_run(argv: list[str], extra: list[str]) -> bool:
    named = ("--model", "-m", "--dataset", "-d", "--config_files", "--tune", "--num_workers", "--resume")
    return not extra and not any(a.split("=")[0] in named for a in argv)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    overrides = dict(FIRST_RUN) if is_first_run(argv, extra) else {}
    overrides.update(parse_overrides(extra))

    from recbole_text import registry
    from recbole_text.compat import CheckpointError, PickleRefusedError
    from recbole_text.config import ConfigError
    from recbole_text.data.atomic import AtomicFileError
    from recbole_text.distributed import DistributedTrainingError
    from recbole_text.quick_start import run
    from recbole_text.ray_env import RayConnectionError

    if args.list_models:
        print("recbole_text:", " ".join(sorted(registry.package_models())) or "(none)")
        print("RecBole:", " ".join(registry.recbole_model_modules()))
        return 0
    config_files = args.config_files.split() or None
    try:
        if args.tune and args.num_workers:
            raise ConfigError("--tune and --num_workers are separate modes; use one")
        if args.tune:
            summary = run_sweep(args, config_files, overrides)
            print_sweep(summary)
            if summary["best"] is None:
                errors = [r["error"] for r in summary["rows"] if r["error"]]
                print(f"error: no trial reported a validation result ({summary['trials']} trials"
                      + (f"; last error: {errors[0]})" if errors else ")"), file=sys.stderr)
                return 2
            return 0
        if args.resume is True:
            raise ConfigError("--resume needs a CHECKPOINT (--resume=saved/X.pth); without one it continues a "
                              "sweep (with --tune)")
        if args.num_workers:
            from recbole_text.distributed import train_distributed

            result = train_distributed(
                args.model, args.dataset, config_files, overrides, num_workers=args.num_workers,
                use_gpu=bool(overrides.get("use_gpu", False)), cpus_per_worker=args.cpus_per_worker,
                ray_address=args.ray_address, experiment_dir=args.experiment_dir, name=args.experiment_name,
                resume=args.resume, result_file=args.result_file,
            )
        else:
            result = run(
                model=args.model,
                dataset=args.dataset,
                config_file_list=config_files,
                config_dict=overrides,
                resume=args.resume,
                result_file=args.result_file,
            )
    except (FileNotFoundError, AtomicFileError, CheckpointError, ConfigError, PickleRefusedError,
            registry.UnknownModelError, DistributedTrainingError, RayConnectionError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] != "ray":
            raise
        print(f"error: --tune and --num_workers need Ray ({e}); install it with: pip install 'ray[tune]'",
              file=sys.stderr)
        return 2
    print_metrics(result)
    return 0


def run_sweep(args, config_files, overrides) -> dict:
    from recbole_text.config import PROPERTIES, ConfigError
    from recbole_text.registry import get_model
    from recbole_text.tune import tune

    if isinstance(args.resume, str):
        raise ConfigError("with --tune, --resume takes no value: it continues the sweep in the experiment folder")
    search_space = args.search_space
    if search_space is None and not args.resume:
        shipped = PROPERTIES / "tune" / f"{get_model(args.model).__name__}.yaml"
        if not shipped.is_file():
            raise ConfigError(f"--tune needs --search_space=FILE.yaml (no {shipped} ships for {args.model})")
        search_space = str(shipped)
    return tune(
        args.model, args.dataset, search_space, config_files, overrides, num_samples=args.num_samples,
        cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial, ray_address=args.ray_address,
        experiment_dir=args.experiment_dir, name=args.experiment_name, resume=bool(args.resume),
        scheduler=args.scheduler, grace_period=args.grace_period, reduction_factor=args.reduction_factor,
        max_failures=args.max_failures, include_default=args.include_default,
    )


def print_sweep(summary: dict) -> None:
    metric, best = summary["metric"], summary["best"]
    saved = summary["epochs_saved_fraction"]
    print(f"\nsweep of {summary['model']} on {summary['dataset']}: {summary['trials']} trials "
          f"({', '.join(f'{v} {k}' for k, v in summary['statuses'].items())}), {summary['epochs_run']} of "
          f"{summary['epochs_budgeted']} budgeted epochs run"
          + (f" ({100 * saved:.0f}% not needed)" if saved is not None and "ERROR" not in summary["statuses"] else "")
          + f", {summary['wall_time_s']:.0f} s")
    if best:
        print(f"best trial {best['trial']}: {metric} {best[f'best_{metric}']:.4f} with {json.dumps(best['config'])}")
        if best.get("test_result"):
            print("test:       " + json.dumps({k: round(v, 4) for k, v in best["test_result"].items()}))
    else:
        print("no trial reported a validation result")
    print(f"results:    {summary['files']['markdown']} (table: {summary['files']['csv']})")


def print_metrics(result: dict) -> None:
    workers = f" on {result['num_workers']} Ray Train workers ({result['backend']})" if result.get("num_workers") else ""
    print(f"\n{result['model']} on {result['dataset']}{workers}: {result['epochs_run']} epochs, "
          f"best epoch {result['best_epoch']}, {result['wall_time_s']:.1f} s")
    print("best valid: " + json.dumps({k: round(v, 4) for k, v in result["best_valid_result"].items()}))
    print("test:       " + json.dumps({k: round(v, 4) for k, v in result["test_result"].items()}))
