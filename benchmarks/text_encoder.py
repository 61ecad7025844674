"""Item text embedding throughput on Scientific: fp32 vs bf16, batching, cache hits, peak memory.

    python benchmarks/text_encoder.py                      # Scientific, the packaged all-MiniLM-L6-v2
    python benchmarks/text_encoder.py --synthetic_items 200000   # + bounded memory on a large catalogue

Builds ``dataset/data/Scientific`` with the UniSRec converter if it is missing, waits (up to ``--wait_s``) for
the machine to be quiet (1-minute load average ≤ ``--max_load``; other people's jobs share the cores) and
records the load next to every figure. Measures, on the dataset's item texts (``recbole_text.text``):

* the texts' token lengths (how much ``plm_max_length`` cuts);
* items/s of naive batching (item-id order, each batch padded to its longest text) and of the package's
  length-sorted batching, fp32 and bf16 autocast, and the cosine between the fp32 and bf16 vectors;
* bf16 autocast over the fp32 encoder (the alternative to the package's bf16 copy of it);
* bf16 items/s per ``plm_batch_size``, with one batch at a time on all torch threads instead of one batch per
  core (the package's way), and on one thread;
* the package's default path end to end (``ensure_item_embeddings`` in a fresh process: encoder load, dtype
  probe, encoding, atomic write) and a cache hit (``item_embeddings`` in another fresh process), each with the
  process's peak RSS;
* with ``--synthetic_items N``: peak RSS of encoding N synthetic texts with a tiny random BERT, chunked (the
  default ``chunk_size``) vs all texts tokenised at once.

Each run is appended to ``benchmarks/results/text-encoder.json`` (``{"runs": [...]}``; ``--fresh`` starts a new
list) and ``.md`` shows the latest run in full plus one summary line per run (machine, command, date, load
averages): on these shared 2 cores the same code measured up to 30 % apart between runs at the same load
average, so one run is not the figure.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
CONVERT = [sys.executable, "-m", "recbole_text.data.converters", "unisrec", "--src", "../shared/data/Scientific",
           "--out", "dataset/data"]


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM: unlike ru_maxrss it does not inherit the parent's peak across
    fork + exec)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load() -> float:
    return round(os.getloadavg()[0], 2)


def wait_until_quiet(max_load: float, wait_s: float) -> dict:
    start, first = time.time(), load()
    while load() > max_load and time.time() - start < wait_s:
        print(f"[text-encoder] load average {load()} > {max_load}: waiting", flush=True)
        time.sleep(15)
    return {"load_at_start": first, "load_when_measuring": load(), "waited_s": round(time.time() - start),
            "quiet": load() <= max_load}


def build(dataset: str, data_path: str, **settings):
    from recbole_text.config import TextConfig
    from recbole_text.data import create_dataset

    config = TextConfig("SASRec", dataset, config_dict={"data_path": data_path, "show_progress": False,
                                                        "state": "WARNING", **settings})
    return config, create_dataset(config)


def timed(function, repeats: int) -> tuple[float, object]:
    """Best wall seconds of ``repeats`` calls and the last result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


def naive_encode(encoder, texts, dtype: str, batch_size: int):
    """Batches in item-id order, each padded to its longest text (no length sorting)."""
    import numpy as np

    out = np.zeros((len(texts), encoder.dim), dtype=np.float32)
    rows = [i for i, t in enumerate(texts) if t]
    for start in range(0, len(rows), batch_size):
        batch_rows = rows[start:start + batch_size]
        ids = encoder.tokenize([texts[i] for i in batch_rows])
        out[batch_rows] = encoder.forward(encoder.pad(ids, range(len(batch_rows))), dtype).numpy()
    return out


def autocast_forward(encoder, batch):
    """The alternative to the package's bf16 copy of the encoder: the fp32 encoder under bf16 autocast."""
    import torch

    from recbole_text.text import pool

    with torch.inference_mode():
        with torch.autocast(encoder.device.type, dtype=torch.bfloat16):
            hidden = encoder.model(**batch).last_hidden_state
        return pool(hidden, batch["attention_mask"], encoder.pooling).cpu()


def cosine_stats(a, b) -> dict:
    import numpy as np

    keep = (np.linalg.norm(a, axis=1) > 0) & (np.linalg.norm(b, axis=1) > 0)
    a, b = a[keep], b[keep]
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return {"min": round(float(cos.min()), 6), "mean": round(float(cos.mean()), 6)}


def child(args) -> None:
    """One phase in its own process (clean peak RSS): prints a JSON record on its last line."""
    started = time.perf_counter()
    if args.child in ("cold", "hit"):
        from recbole_text.text import ensure_item_embeddings, item_embeddings

        config, dataset = build(args.dataset, args.data_path, text_cache_dir=args.cache_dir)
        ready = time.perf_counter()
        if args.child == "cold":
            path = ensure_item_embeddings(config, dataset)
            record = json.loads(path.with_suffix(".json").read_text())
        else:
            table = item_embeddings(config, dataset)
            record = {"shape": list(table.shape)}
        record.update(seconds=round(time.perf_counter() - ready, 3), dataset_build_s=round(ready - started, 3))
    else:  # synthetic: a large catalogue with a tiny random BERT
        import numpy as np
        from transformers import AutoTokenizer, BertConfig, BertModel

        from recbole_text.text import TextEncoder, packaged_encoder_path
        from recbole_text.text.cache import write_table

        folder = Path(args.cache_dir) / "tiny-bert"
        if not folder.is_dir():
            tokenizer = AutoTokenizer.from_pretrained(str(packaged_encoder_path()), local_files_only=True)
            BertModel(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1,
                                 num_attention_heads=2, intermediate_size=37)).save_pretrained(str(folder))
            tokenizer.save_pretrained(str(folder))
        encoder = TextEncoder(folder)
        rng = np.random.default_rng(0)
        words = ["sanding", "roll", "grit", "adhesive", "industrial", "scientific", "abrasive", "glove", "nitrile",
                 "tape", "lab", "beaker", "glass", "steel", "bolt", "inch", "pack", "black", "white", "safety"]
        texts = [""] + [" ".join(rng.choice(words, size=int(rng.integers(8, 40)))) + f" model {i}"
                        for i in range(args.synthetic_items)]
        chunk = len(texts) if args.child == "unchunked" else args.chunk_size
        base = peak_rss_mb()
        write_table(Path(args.cache_dir) / f"{args.child}.npy", (len(texts), encoder.dim),
                    lambda table: encoder.encode_into(table, texts, chunk_size=chunk, batch_size=256))
        record = {"items": args.synthetic_items, "chunk_size": chunk, "rss_before_encoding_mb": round(base),
                  "seconds": round(time.perf_counter() - started, 1)}
    record["peak_rss_mb"] = round(peak_rss_mb())
    print(json.dumps(record))


def run_child(phase: str, args, cache_dir: str, **extra) -> dict:
    command = [sys.executable, __file__, "--child", phase, "--dataset", args.dataset, "--data_path", args.data_path,
               "--cache_dir", cache_dir]
    for key, value in extra.items():
        command += [f"--{key}", str(value)]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    record = json.loads(done.stdout.strip().splitlines()[-1])
    record["process_wall_s"] = round(time.perf_counter() - start, 2)
    return record


def main(args) -> dict:
    import numpy as np
    import torch

    from recbole_text.quick_start import machine_description
    from recbole_text.text import TextEncoder, item_encoder_texts, packaged_encoder_path

    if not (Path(args.data_path) / args.dataset / f"{args.dataset}.itemtext").is_file():
        if args.dataset != "Scientific":
            raise SystemExit(f"{args.data_path}/{args.dataset} does not exist")
        subprocess.run(CONVERT, check=True, cwd=ROOT)
    quiet = wait_until_quiet(args.max_load, args.wait_s)
    config, dataset = build(args.dataset, args.data_path)
    fields, texts = item_encoder_texts(config, dataset)
    batch_size, max_length = config["plm_batch_size"], config["plm_max_length"]
    encoder = TextEncoder(packaged_encoder_path(), pooling=config["plm_pooling"], max_length=max_length)
    lengths = np.array([len(ids) for ids in encoder.tokenizer([t for t in texts if t])["input_ids"]])  # uncut
    record = {
        "command": "python " + " ".join([os.path.relpath(__file__, ROOT)] + sys.argv[1:]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine_description(), **quiet,
        "dataset": args.dataset, "items": len(texts) - 1, "items_with_text": int(len(lengths)), "fields": fields,
        "encoder": "all-MiniLM-L6-v2 (packaged)", "pooling": config["plm_pooling"], "max_length": max_length,
        "batch_size": batch_size,
        "tokens": {"mean": round(float(lengths.mean()), 1), "p50": int(np.percentile(lengths, 50)),
                   "p90": int(np.percentile(lengths, 90)), "p99": int(np.percentile(lengths, 99)),
                   "max": int(lengths.max()), f"cut_at_{max_length}": int((lengths > max_length).sum())},
        "throughput": [],
    }
    n = len(lengths)
    encoder.encode(texts[:256], dtype="bf16")  # warm-up (oneDNN kernels, allocator)

    def measure(label: str, function, **info):
        before = load()
        seconds, out = timed(function, args.repeats)
        row = {"label": label, **info, "items_per_s": round(n / seconds, 1), "seconds": round(seconds, 2),
               "load_before": before, "load_after": load()}
        record["throughput"].append(row)
        print(f"[text-encoder] {row}", flush=True)
        return out

    naive = {}
    for dtype in ("fp32", "bf16"):
        naive[dtype] = measure(f"naive {dtype}", lambda: naive_encode(encoder, texts, dtype, 64), dtype=dtype,
                               batch_size=64, batching="item-id order")
    tables = {}
    for dtype in ("fp32", "bf16"):
        tables[dtype] = measure(f"sorted {dtype}", lambda: encoder.encode(texts, dtype=dtype, batch_size=batch_size),
                                dtype=dtype, batch_size=batch_size, batching="length-sorted")
    record["bf16_vs_fp32_cosine"] = cosine_stats(tables["fp32"], tables["bf16"])
    encoder.forward = lambda batch, dtype="fp32": autocast_forward(encoder, batch)  # this instance only
    autocast = measure("sorted bf16 autocast (fp32 weights)", lambda: encoder.encode(texts, batch_size=batch_size),
                       dtype="bf16 autocast", batch_size=batch_size, batching="length-sorted")
    del encoder.forward
    record["autocast_vs_fp32_cosine"] = cosine_stats(tables["fp32"], autocast)
    record["naive_bf16_vs_fp32_cosine"] = cosine_stats(naive["fp32"], naive["bf16"])
    for size in args.batch_sizes:
        if size != batch_size:
            measure(f"sorted bf16 batch {size}", lambda: encoder.encode(texts, dtype="bf16", batch_size=size),
                    dtype="bf16", batch_size=size, batching="length-sorted")
    threads = torch.get_num_threads()
    if threads > 1:
        measure(f"sorted bf16, one batch at a time on {threads} torch threads",
                lambda: encoder.encode(texts, dtype="bf16", batch_size=batch_size, workers=1),
                dtype="bf16", batch_size=batch_size, batching="length-sorted", threads=threads, workers=1)
        torch.set_num_threads(1)
        measure("sorted bf16, 1 thread", lambda: encoder.encode(texts, dtype="bf16", batch_size=batch_size),
                dtype="bf16", batch_size=batch_size, batching="length-sorted", threads=1)
        torch.set_num_threads(threads)
    del encoder
    with tempfile.TemporaryDirectory() as cache:
        record["default_cold"] = run_child("cold", args, cache)
        record["default_hit"] = run_child("hit", args, cache)
        hits = [run_child("hit", args, cache)["seconds"] for _ in range(max(0, args.repeats - 1))]
        record["default_hit"]["seconds_all"] = [record["default_hit"]["seconds"]] + hits
    if args.synthetic_items:
        with tempfile.TemporaryDirectory() as cache:
            record["synthetic"] = [run_child(phase, args, cache, synthetic_items=args.synthetic_items,
                                             chunk_size=args.chunk_size) for phase in ("chunked", "unchunked")]
    record["load_at_end"] = load()
    return record


def throughput(record: dict, label: str):
    """items/s of the row named ``label`` (``None`` if the run has no such row)."""
    return next((row["items_per_s"] for row in record["throughput"] if row["label"] == label), None)


def summary_lines(runs: list[dict]) -> list[str]:
    lines = ["| date (UTC) | load at start → end | sorted fp32 | sorted bf16 | bf16 autocast | best bf16 batch | "
             "bf16, one batch at a time on all threads | bf16, 1 thread | cache miss end to end | cache hit (s) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for run in runs:
        batches = [(row["items_per_s"], row["batch_size"]) for row in run["throughput"]
                   if row["label"].startswith("sorted bf16") and row["dtype"] == "bf16" and "threads" not in row]
        best = max(batches) if batches else None
        one_batch = next((row["items_per_s"] for row in run["throughput"] if row.get("workers") == 1), None)
        cells = [throughput(run, "sorted fp32"), throughput(run, "sorted bf16"),
                 throughput(run, "sorted bf16 autocast (fp32 weights)")]
        lines.append(" | ".join(
            [f"| {run['date'][:16]}", f"{run['load_at_start']} → {run['load_at_end']}"]
            + [f"{c:.0f}" if c is not None else "—" for c in cells]
            + [f"{best[0]:.0f} (batch {best[1]})" if best else "—", f"{one_batch:.0f}" if one_batch else "—",
               f"{throughput(run, 'sorted bf16, 1 thread') or 0:.0f}",
               f"{run['default_cold']['items_per_s']:.0f} ({run['default_cold']['dtype']})",
               f"{run['default_hit']['seconds']}"]) + " |")
    return lines


def render(runs: list[dict]) -> str:
    record = runs[-1]
    tokens = record["tokens"]
    cold, hit = record["default_cold"], record["default_hit"]
    lines = [
        f"# Item text embeddings: {record['encoder']} on {record['dataset']}", "",
        f"- command: `{record['command']}`",
        f"- machine: {record['machine']}",
        f"- date: {record['date']}",
        f"- load average (1 min): {record['load_at_start']} at start, {record['load_when_measuring']} when "
        f"measuring ({'quiet' if record['quiet'] else 'NOT quiet: other jobs shared the cores'}), "
        f"{record['load_at_end']} at the end; each row below shows the load before → after it",
        f"- {record['items_with_text']} of {record['items']} items have text ({', '.join(record['fields'])}: values "
        f"joined by '. '); tokens per text: mean {tokens['mean']}, p50 {tokens['p50']}, p90 {tokens['p90']}, p99 "
        f"{tokens['p99']}, max {tokens['max']}; {tokens['cut_at_' + str(record['max_length'])]} cut "
        f"at plm_max_length={record['max_length']}",
        f"- {record['pooling']} pooling; items/s = texts encoded per wall second, best of the repeats "
        "(tokenisation included, model load excluded)", "",
        "| configuration | dtype | batch | items/s | seconds | load before → after |", "|---|---|---|---|---|---|",
    ]
    for row in record["throughput"]:
        lines.append(f"| {row['label']} | {row['dtype']} | {row['batch_size']} | {row['items_per_s']:.0f} | "
                     f"{row['seconds']} | {row['load_before']} → {row['load_after']} |")
    cos, naive_cos = record["bf16_vs_fp32_cosine"], record["naive_bf16_vs_fp32_cosine"]
    lines += [
        "", f"Cosine between the bf16 and fp32 vectors of the same item (length-sorted batches): min {cos['min']}, "
        f"mean {cos['mean']} (naive batching: min {naive_cos['min']}; bf16 autocast instead of the package's bf16 "
        f"copy of the encoder: min {(record.get('autocast_vs_fp32_cosine') or {}).get('min', '—')}).", "",
        "The package's default path, each in a fresh process (`plm_dtype: auto`, default settings):", "",
        "| phase | what | seconds | peak RSS (MB) | process wall (s) |", "|---|---|---|---|---|",
        f"| cache miss | `ensure_item_embeddings`: load encoder, dtype probe → {cold['dtype']} (min cosine "
        f"{cold['bf16_min_cosine']}), encode {cold['encoded']} items at {cold['items_per_s']} items/s, write | "
        f"{cold['seconds']} | {cold['peak_rss_mb']} | {cold['process_wall_s']} |",
        f"| cache hit | `item_embeddings` → {tuple(hit['shape'])} tensor (fingerprint the encoder files, hash the "
        f"texts, load the .npy); all runs: {hit['seconds_all']} s | {hit['seconds']} | {hit['peak_rss_mb']} | "
        f"{hit['process_wall_s']} |",
        "", "Both processes also build the dataset first (not in the seconds; in the process wall time).",
    ]
    if record.get("synthetic"):
        lines += ["", "Bounded memory: a synthetic catalogue through a tiny random BERT (hidden 32, 1 layer), "
                  "each in a fresh process:", "",
                  "| items | texts tokenised at a time | peak RSS (MB) | RSS before encoding (MB) | seconds |",
                  "|---|---|---|---|---|"]
        for row in record["synthetic"]:
            lines.append(f"| {row['items']} | {row['chunk_size']} | {row['peak_rss_mb']} | "
                         f"{row['rss_before_encoding_mb']} | {row['seconds']} |")
    if record.get("note"):
        lines += ["", f"Note: {record['note']}"]
    lines += ["", f"## Every run ({len(runs)}), items/s", "",
              "Same code and settings; the load average does not show other virtual machines on the same host, "
              "and runs at the same load differed by up to 30 %.", ""] + summary_lines(runs)
    for run in runs:
        if run.get("note"):
            lines.append(f"- {run['date'][:16]}: {run['note']}")
    return "\n".join(lines) + "\n"


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="Scientific")
    parser.add_argument("--data_path", default=str(ROOT / "dataset" / "data"))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch_sizes", type=int, nargs="*", default=[32, 48, 64, 128, 256])
    parser.add_argument("--max_load", type=float, default=0.5, help="quiet = 1-minute load average at most this")
    parser.add_argument("--wait_s", type=float, default=300, help="wait at most this long for a quiet machine")
    parser.add_argument("--synthetic_items", type=int, default=0)
    parser.add_argument("--chunk_size", type=int, default=8192)
    parser.add_argument("--note", default="", help="a remark added to the results")
    parser.add_argument("--fresh", action="store_true", help="start a new list of runs instead of appending")
    parser.add_argument("--out", default=str(RESULTS / "text-encoder"), help="results path without suffix")
    parser.add_argument("--child", choices=("cold", "hit", "chunked", "unchunked"), help=argparse.SUPPRESS)
    parser.add_argument("--cache_dir", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse()
    if arguments.child:
        child(arguments)
    else:
        result = main(arguments)
        if arguments.note:
            result["note"] = arguments.note
        out = Path(arguments.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        history = out.with_suffix(".json")
        runs = []
        if history.is_file() and not arguments.fresh:
            old = json.loads(history.read_text())
            runs = old["runs"] if "runs" in old else [old]  # a file from before the history kept one run
        runs.append(result)
        history.write_text(json.dumps({"runs": runs}, indent=1) + "\n")
        out.with_suffix(".md").write_text(render(runs))
        print(render(runs))
