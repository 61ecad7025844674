"""Recformer's cost on this CPU: item-table encoding, training steps and evaluation, fp32 vs bf16 autocast.

    python benchmarks/recformer_cpu.py                     # Scientific, the CPU profile (Recformer.yaml)
    python benchmarks/recformer_cpu.py --tokens 128 256    # the sequence lengths to time
    python benchmarks/recformer_cpu.py --device cuda --tokens 512 1024   # on a GPU (benchmarks/gpu_checks.sh)

Builds the model of ``--model=Recformer --dataset=Scientific`` (the packaged MiniLM converted to a Longformer,
dense attention) and measures, after waiting for a quiet machine (as ``text_encoder.py``):

* the item table (``encode_catalogue``: every item, ``item_encode_batch_size`` at a time, no gradients): items/s
  in fp32 and under bf16 autocast, and the cosine between the two tables' rows;
* a training step (forward, backward, AdamW) on ``train_batch_size`` RSS rows of the training loader, for each
  ``max_token_num`` of ``--tokens``, fp32 and bf16, seconds per step (median of ``--steps`` after one warm-up),
  and where that time goes: the median seconds of the forward pass (loss), the backward pass and the AdamW step;
  and the sequence encoder's forward + backward with its last layer computed for every token vs for [CLS] alone;
* evaluation: sequences/s of the sequence encoder (no gradients) at the profile's ``max_token_num``, fp32 and
  bf16, and what an epoch costs by that arithmetic (steps × s/step + table + validation);
* the process's peak RSS.

Where the CPU has no native bf16 (no AMX or AVX512-BF16) autocast would emulate it, ~70× slower than fp32 (hours
for the item table), and the trainer falls back to fp32 there: only fp32 is timed unless ``--emulated_bf16``.

Results: ``benchmarks/results/recformer-cpu.json`` (``{"runs": [...]}``, appended) and ``.md`` (every run, the
latest first); ``recformer-gpu.*`` with ``--device cuda``, where every timing waits for the GPU to finish
(``torch.cuda.synchronize``) and the GPU's peak allocated memory is recorded too.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from text_encoder import RESULTS, ROOT, load, peak_rss_mb, wait_until_quiet  # noqa: E402

sys.path.insert(0, str(ROOT))


def build(args, tokens: int):
    from recbole_text.job import build_job

    # RSS rows without grouping (nearly full-width inputs): the steps time max_token_num itself, as in every run
    # before the CPU profile moved to length-grouped prefix rows (whose first batches are a few items wide)
    settings = {"max_token_num": tokens, "show_progress": False, "plm_name": args.plm_name, "train_strategy": "rss",
                "group_by_length": False}
    if args.data_path:
        settings["data_path"] = args.data_path
    return build_job("Recformer", args.dataset, config_dict=settings, with_trainer=False, log=False, device=args.device)


def synchronize(device) -> None:
    """Wait for the GPU's queued kernels, so that a clock read after it times them (a no-op on the CPU)."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_table(model, bf16: bool):
    import torch

    device = model.item_table.device
    synchronize(device)
    start = time.perf_counter()
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        table = model.encode_catalogue()
    synchronize(device)
    return time.perf_counter() - start, table


PHASES = ("forward", "backward", "optimizer")


def step_seconds(model, batches, bf16: bool, steps: int) -> tuple[float, dict[str, float]]:
    """(median seconds per step, {phase: median seconds}) over ``steps`` steps after one warm-up."""
    import torch

    from recbole_text.trainer import fused

    model.train()
    device = model.item_table.device
    optimizer = fused(torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5))  # as trained
    times = {phase: [] for phase in ("step",) + PHASES}
    for index, batch in zip(range(steps + 1), batches):
        synchronize(device)
        marks = [time.perf_counter()]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = model.calculate_loss(batch)
        synchronize(device)
        marks.append(time.perf_counter())
        loss.backward()
        synchronize(device)
        marks.append(time.perf_counter())
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        synchronize(device)
        marks.append(time.perf_counter())
        if index:  # the first step warms up (allocations, oneDNN kernels)
            times["step"].append(marks[-1] - marks[0])
            for phase, start, end in zip(PHASES, marks, marks[1:]):
                times[phase].append(end - start)
    return statistics.median(times["step"]), {phase: statistics.median(times[phase]) for phase in PHASES}


def encoder_seconds(model, batches, steps: int) -> dict[str, float]:
    """Median fp32 seconds of the sequence encoder's forward + backward (training mode) on the batches' sequences,
    ``full``: the last layer computes every token, ``cls_only``: [CLS] alone (what ``h_[CLS]`` pooling runs);
    the two alternate batch by batch so that drift in the machine's speed falls on both."""
    import torch

    model.train()
    device = model.item_table.device
    times = {"full": [], "cls_only": []}
    for index, batch in zip(range(steps + 1), batches):
        inputs = model.sequence_inputs(batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN])
        for name in times:
            synchronize(device)
            start = time.perf_counter()
            model.encode_tokens(inputs, cls_only=name == "cls_only")[:, 0].sum().backward()
            synchronize(device)
            if index:
                times[name].append(time.perf_counter() - start)
            model.zero_grad(set_to_none=True)
    return {name: statistics.median(values) for name, values in times.items()}


def sequences_per_second(model, batch, bf16: bool, repeats: int = 3) -> float:
    import torch

    model.eval()
    seq, length = batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN]
    device = seq.device
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        model.encode_sequence(seq, length)
        synchronize(device)
        start = time.perf_counter()
        for _ in range(repeats):
            model.encode_sequence(seq, length)
        synchronize(device)
    return repeats * len(seq) / (time.perf_counter() - start)


def main(args) -> dict:
    import torch

    from recbole_text.quick_start import machine_description
    from recbole_text.text.encoder import bf16_native

    device = torch.device(args.device)
    native = bf16_native(device)
    with_bf16 = native or args.emulated_bf16
    quiet = wait_until_quiet(args.max_load, args.wait_s)
    record = {"machine": machine_description(), "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
              "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "load_before": quiet,
              "torch_threads": torch.get_num_threads(), "dataset": args.dataset, "steps": {},
              "bf16_native": native, "device": args.device, "plm_name": args.plm_name}
    profile_tokens = args.tokens[0]
    for tokens in args.tokens:
        job = build(args, tokens)
        model = job.model
        if tokens == profile_tokens:
            fp32_s, fp32_table = timed_table(model, bf16=False)
            items = len(fp32_table)
            record["item_table"] = {"items": items, "fp32_items_per_s": items / fp32_s, "fp32_s": fp32_s,
                                    "bf16_items_per_s": None, "bf16_s": None, "cosine_min": None, "cosine_mean": None}
            if with_bf16:
                bf16_s, bf16_table = timed_table(model, bf16=True)
                cosine = torch.nn.functional.cosine_similarity(fp32_table, bf16_table.float(), dim=-1)
                record["item_table"].update(bf16_items_per_s=items / bf16_s, bf16_s=bf16_s,
                                            cosine_min=float(cosine.min()), cosine_mean=float(cosine.mean()))
            model.item_table[1:] = fp32_table
            model.item_table_ready.fill_(True)
            eval_batch = next(iter(job.valid_data))[0].to(device)
            record["evaluation"] = {"rows": len(eval_batch), "max_token_num": tokens,
                                    "fp32_sequences_per_s": sequences_per_second(model, eval_batch, bf16=False),
                                    "bf16_sequences_per_s": (sequences_per_second(model, eval_batch, bf16=True)
                                                             if with_bf16 else None)}
            record["train_steps_per_epoch"] = len(job.train_data)
            record["valid_rows"] = len(job.valid_data.dataset.inter_feat)
        else:
            model.refresh_item_table()
        batches = list(zip(range(args.steps + 1), job.train_data))
        batches = [batch.to(device) for _, batch in batches]
        fp32_s, fp32_phases = step_seconds(model, batches, bf16=False, steps=args.steps)
        bf16_s, bf16_phases = step_seconds(model, batches, bf16=True, steps=args.steps) if with_bf16 else (None, None)
        record["steps"][str(tokens)] = {"batch": len(batches[0]), "fp32_s": fp32_s, "bf16_s": bf16_s,
                                        "fp32_phases_s": fp32_phases, "bf16_phases_s": bf16_phases,
                                        "encoder_fp32_s": encoder_seconds(model, batches, args.steps)}
        del job, model
    steps, table, evaluation = record["train_steps_per_epoch"], record["item_table"], record["evaluation"]
    for dtype in ("fp32", "bf16"):  # training in `dtype`, the table and validation as the trainer runs them: fp32
        if record["steps"][str(profile_tokens)][f"{dtype}_s"] is None:
            record[f"epoch_estimate_{dtype}_s"] = None
            continue
        record[f"epoch_estimate_{dtype}_s"] = (steps * record["steps"][str(profile_tokens)][f"{dtype}_s"]
                                              + table["fp32_s"] + record["valid_rows"] / evaluation["fp32_sequences_per_s"])
    record["peak_rss_mb"] = peak_rss_mb()
    if device.type == "cuda":
        record["gpu_peak_allocated_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    record["load_after"] = load()
    write(record, args.fresh, Path(args.results))
    return record


def _figure(value, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def _rate(value) -> str:
    """A per-second figure: whole numbers from 10 up, two decimals below (a Longformer-base evaluates ~0.8/s here)."""
    return "—" if value is None else format(value, ".0f" if value >= 10 else ".2f")


def render_run(record: dict) -> list[str]:
    table, evaluation = record["item_table"], record["evaluation"]
    native = record.get("bf16_native", True)  # runs before this field were on an AMX machine
    lines = [f"## {record['date']}: {'native' if native else 'no native'} bf16", "",
             f"- machine: {record['machine']}",
             f"- command: `{record['command']}`",
             f"- 1-minute load average when measuring / after: {record['load_before']['load_when_measuring']:.2f} / "
             f"{record['load_after']:.2f}",
             f"- dataset: {record['dataset']}; backbone: "
             f"{record.get('plm_name') or 'the packaged all-MiniLM-L6-v2 converted to a Longformer'} (dense "
             f"attention); peak RSS of the process: {record['peak_rss_mb']:.0f} MB"]
    if "gpu_peak_allocated_mb" in record:
        lines.append(f"- device: {record['device']}, peak GPU memory allocated: {record['gpu_peak_allocated_mb']:.0f} MB")
    if table["bf16_s"] is None:
        lines.append("- bf16 not timed (—): this device would emulate it, and the trainer runs fp32 here")
    lines += ["", "### Item table (every item, no gradients)", "",
              "| | items/s | seconds |", "|---|---|---|",
              f"| fp32 | {_rate(table['fp32_items_per_s'])} | {table['fp32_s']:.1f} |",
              f"| bf16 autocast | {_rate(table['bf16_items_per_s'])} | {_figure(table['bf16_s'], '.1f')} |", ""]
    if table["cosine_min"] is not None:
        lines += [f"{table['items']} items; cosine between the fp32 and bf16 rows: min {table['cosine_min']:.4f}, "
                  f"mean {table['cosine_mean']:.4f}.", ""]
    lines += ["### Training step (forward + backward + AdamW)", "",
              "| max_token_num | rows | fp32 s/step | bf16 s/step | bf16 speed-up |", "|---|---|---|---|---|"]
    for tokens, step in record["steps"].items():
        speedup = "—" if step["bf16_s"] is None else f"{step['fp32_s'] / step['bf16_s']:.2f}×"
        lines.append(f"| {tokens} | {step['batch']} | {step['fp32_s']:.2f} | {_figure(step['bf16_s'], '.2f')} | "
                     f"{speedup} |")
    phased = [(tokens, dtype, step[f"{dtype}_phases_s"]) for tokens, step in record["steps"].items()
              for dtype in ("fp32", "bf16") if step.get(f"{dtype}_phases_s")]  # runs before 2026-12-07 have none
    if phased:
        lines += ["", "Where a step's time goes (median seconds):", "",
                  "| max_token_num | precision | forward (loss) | backward | AdamW step |", "|---|---|---|---|---|"]
        lines += [f"| {tokens} | {dtype} | " + " | ".join(f"{phases[phase]:.3f}" for phase in PHASES) + " |"
                  for tokens, dtype, phases in phased]
    encoder = [(tokens, step["encoder_fp32_s"]) for tokens, step in record["steps"].items() if "encoder_fp32_s" in step]
    if encoder:  # runs before 2026-12-07T06:40 have none
        lines += ["", "Sequence encoder forward + backward, fp32 (median seconds): the last layer for every token, "
                  "or for [CLS] alone (`h_[CLS]` pooling):", "",
                  "| max_token_num | every token | [CLS] alone | saved |", "|---|---|---|---|"]
        lines += [f"| {tokens} | {times['full']:.3f} | {times['cls_only']:.3f} | "
                  f"{1 - times['cls_only'] / times['full']:.0%} |" for tokens, times in encoder]
    lines += ["", f"### Evaluation (sequence encoder, {evaluation['rows']} rows, {evaluation['max_token_num']} tokens)",
              "", f"fp32 {_rate(evaluation['fp32_sequences_per_s'])} sequences/s, bf16 autocast "
              f"{_rate(evaluation['bf16_sequences_per_s'])} sequences/s.", "",
              "### One stage-1 epoch by these figures", "",
              f"{record['train_steps_per_epoch']} steps (one RSS target per user) + the item table + validation of "
              f"{record['valid_rows']} rows (both fp32): {record['epoch_estimate_fp32_s']:.0f} s with fp32 training, "
              f"{_figure(record['epoch_estimate_bf16_s'], '.0f')} s with bf16 autocast training.", ""]
    return lines


def render(runs: list[dict], device: str = "cpu") -> str:
    title = "this project's CPUs" if device == "cpu" else "a GPU"
    lines = [f"# Recformer on {title}: fp32 vs bf16 autocast", "",
             "Every run, the latest first. bf16 autocast is native on AMX / AVX512-BF16 CPUs and bf16 GPUs, and "
             "emulated elsewhere.", ""]
    for record in reversed(runs):
        lines += render_run(record)
    return "\n".join(lines)


def write(record: dict, fresh: bool, results: Path = RESULTS) -> None:
    device = record.get("device", "cpu")
    stem = "recformer-cpu" if device == "cpu" else "recformer-gpu"
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"{stem}.json"
    runs = [] if fresh or not path.exists() else json.loads(path.read_text())["runs"]
    runs.append(record)
    path.write_text(json.dumps({"runs": runs}, indent=2))
    (results / f"{stem}.md").write_text(render(runs, device))


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="Scientific")
    parser.add_argument("--tokens", type=int, nargs="+", default=[128, 256],
                        help="max_token_num values to time (the first is also used for the table and evaluation)")
    parser.add_argument("--steps", type=int, default=4, help="timed training steps per setting (after one warm-up)")
    parser.add_argument("--max_load", type=float, default=0.5)
    parser.add_argument("--wait_s", type=float, default=0.0, help="wait up to this long for a quiet machine")
    parser.add_argument("--fresh", action="store_true", help="start a new results list")
    parser.add_argument("--emulated_bf16", action="store_true",
                        help="time bf16 autocast even where this CPU would emulate it (~70x slower than fp32)")
    parser.add_argument("--plm_name", default=None, help="backbone (default: the packaged MiniLM)")
    parser.add_argument("--data_path", default=None, help="folder holding the dataset (default: the config's)")
    parser.add_argument("--results", default=str(RESULTS), help="where the JSON and Markdown go")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where the model runs")
    return parser.parse_args(argv)


if __name__ == "__main__":
    print(json.dumps(main(parse()), indent=2))
