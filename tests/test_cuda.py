"""The CUDA paths, on a GPU only (skipped elsewhere; ``benchmarks/gpu_checks.sh`` runs them on a lent one):
Recformer's forward on the GPU agrees with the CPU's, training under bf16 autocast and under fp16 with
GradScaler, the text encoder on the GPU, and one NCCL worker equal to single-process training."""
from __future__ import annotations

import pytest
import torch

from test_distributed import SETTINGS as SEQUENTIAL_SETTINGS, free_port
from test_recformer import settings

from recbole_text.job import build_job
from recbole_text.quick_start import run

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def state_on(job, device: str) -> dict:
    return {name: tensor.to(device, copy=True) for name, tensor in job.model.state_dict().items()}


def test_recformer_scores_on_cuda_match_the_cpu(text_data, in_tmp_cwd):
    cpu = build_job("Recformer", "c", config_dict=settings(text_data), device="cpu", log=False)
    gpu = build_job("Recformer", "c", config_dict=settings(text_data), device="cuda", log=False)
    gpu.model.load_state_dict(state_on(cpu, "cuda"))
    assert next(gpu.model.parameters()).device.type == "cuda"
    batch = next(iter(cpu.test_data))[0]
    with torch.no_grad():
        expected = cpu.model.eval().full_sort_predict(batch)
        scores = gpu.model.eval().full_sort_predict(batch.to(torch.device("cuda")))
    assert scores.device.type == "cuda" and gpu.model.item_table.device.type == "cuda"
    assert torch.allclose(scores.cpu(), expected, atol=2e-3)  # cos/τ with τ 0.05: cosines within 1e-4


@pytest.mark.parametrize("amp_dtype, scaler", [("bf16", False), ("fp16", True)])
def test_recformer_trains_on_cuda_under_autocast(amp_dtype, scaler, text_data, in_tmp_cwd):
    seen = []
    job = build_job("Recformer", "c", log=False, device="cuda",
                    config_dict=settings(text_data, enable_amp=True, amp_dtype=amp_dtype, enable_scaler=scaler))
    start = state_on(job, "cpu")
    original = job.model.calculate_loss
    job.model.calculate_loss = lambda batch: seen.append(
        (batch[job.model.ITEM_SEQ].device.type, torch.is_autocast_enabled("cuda"),
         torch.get_autocast_dtype("cuda"))) or original(batch)
    try:
        job.trainer.fit(job.train_data, job.valid_data, saved=False)
    finally:
        torch.set_autocast_dtype("cuda", torch.float16)  # torch's CUDA default, for the other tests
    dtype = torch.bfloat16 if amp_dtype == "bf16" else torch.float16
    assert seen and set(seen) == {("cuda", True, dtype)}
    assert all(torch.isfinite(p).all() for p in job.model.parameters())
    moved = [name for name, tensor in state_on(job, "cpu").items()
             if tensor.is_floating_point() and not torch.equal(tensor, start[name])]
    assert any("encoder.layer" in name for name in moved)  # the scaled steps were taken, not skipped


def test_recformer_run_on_cuda_reports_test_metrics_from_the_gpu(text_data, in_tmp_cwd):
    assert torch.device(build_job("Recformer", "c", config_dict=settings(text_data), loaders=False,
                                  with_trainer=False, log=False).config["device"]).type == "cuda"  # use_gpu's default
    result = run("Recformer", "c", config_dict=settings(text_data, enable_amp=True, eval_amp=True, stage2_epochs=1),
                 saved=True)
    assert [h["stage"] for h in result["history"]] == ["finetune", "stage2"]
    assert 0.0 <= result["test_result"]["ndcg@10"] <= 1.0
    assert result["machine"].endswith(torch.cuda.get_device_name(0))  # the run record names the GPU it ran on


def test_text_encoder_on_cuda_matches_the_cpu(text_data):
    from recbole_text.text.encoder import TextEncoder

    _, bert = text_data
    texts = ["title: a red pen brand: acme", "a much longer description " * 20, "x"]
    cpu = TextEncoder(bert, device="cpu").encode(texts)
    gpu = TextEncoder(bert, device="cuda")
    fp32, bf16 = gpu.encode(texts), gpu.encode(texts, dtype="bf16")
    assert fp32.dtype == bf16.dtype == cpu.dtype
    cosine = torch.nn.functional.cosine_similarity
    assert cosine(torch.from_numpy(fp32), torch.from_numpy(cpu)).min() > 0.9999
    assert cosine(torch.from_numpy(bf16), torch.from_numpy(cpu)).min() > 0.99


def test_one_nccl_worker_is_single_process_training_on_cuda(tiny_data, in_tmp_cwd):
    import torch.distributed as dist

    from recbole_text.distributed import train_worker

    config = {**SEQUENTIAL_SETTINGS, "data_path": str(tiny_data)}
    single = run("SeqSASRec", "tiny", config_dict=dict(config))
    dist.init_process_group("nccl", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1)
    try:
        worker = train_worker({"model": "SeqSASRec", "dataset": "tiny", "config_files": [], "overrides": config,
                               "use_gpu": True, "threads": torch.get_num_threads()}, report=lambda metrics: None)
    finally:
        dist.destroy_process_group()
    assert worker["num_workers"] == 1 and worker["backend"] == "nccl"
    # the GPU's atomics make neither run bit-for-bit reproducible: equal within float noise, not exactly
    assert [h["train_loss"] for h in worker["history"]] == pytest.approx([h["train_loss"] for h in single["history"]],
                                                                         rel=1e-3)
    assert worker["test_result"]["ndcg@10"] == pytest.approx(single["test_result"]["ndcg@10"], abs=0.02)


def test_recformer_benchmark_times_the_gpu_and_writes_its_own_report(text_data, tmp_path, in_tmp_cwd):
    import sys

    from conftest import REPO

    sys.path.insert(0, str(REPO / "benchmarks"))
    import recformer_cpu

    root, bert = text_data
    record = recformer_cpu.main(recformer_cpu.parse([
        "--dataset=c", f"--data_path={root}", f"--plm_name={bert}", "--tokens", "32", "--steps", "2",
        f"--results={tmp_path}", "--device=cuda"]))
    assert record["bf16_native"] and record["steps"]["32"]["bf16_s"] > 0 and record["gpu_peak_allocated_mb"] > 0
    assert "peak GPU memory" in (tmp_path / "recformer-gpu.md").read_text()
    assert not (tmp_path / "recformer-cpu.md").exists()
