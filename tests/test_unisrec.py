"""UniSRec: the MoE whitening adaptor, cosine scores, training stages, parameter-efficient finetuning."""
from __future__ import annotations

import pytest
import torch

from recbole_text.model.sequential_recommender.unisrec import MoEAdaptor


def test_adaptor_shapes_and_expert_definition():
    torch.manual_seed(0)
    adaptor = MoEAdaptor(n_exps=3, plm_size=8, d=5, dropout=0.0).eval()
    with torch.no_grad():
        adaptor.bias.normal_()
        adaptor.gate.normal_()
    x = torch.randn(4, 7, 8)
    out = adaptor(x)
    assert out.shape == (4, 7, 5)
    gates = torch.softmax(x @ adaptor.gate, dim=-1)  # (4, 7, 3)
    experts = torch.stack([(x - adaptor.bias[k]) @ adaptor.weight[k] for k in range(3)], dim=-2)  # (4, 7, 3, 5)
    assert torch.allclose(out, (gates[..., None] * experts).sum(-2), atol=1e-5)


def test_gate_rows_sum_to_one_and_start_uniform():
    adaptor = MoEAdaptor(n_exps=8, plm_size=16, d=4, dropout=0.2).train()
    x = torch.randn(32, 16)
    gates = adaptor.gates(x)
    assert torch.allclose(gates.sum(-1), torch.ones(32))
    assert torch.allclose(adaptor.eval().gates(x), torch.full((32, 8), 1 / 8))  # W_g = 0 at start


def test_gate_noise_only_in_training():
    adaptor = MoEAdaptor(n_exps=4, plm_size=6, d=3, dropout=0.0)
    with torch.no_grad():
        adaptor.gate.normal_()
        adaptor.gate_noise.normal_()
    x = torch.randn(10, 6)
    adaptor.eval()
    assert torch.equal(adaptor.gates(x), adaptor.gates(x))
    assert torch.allclose(adaptor.gates(x), torch.softmax(x @ adaptor.gate, -1))
    adaptor.train()
    torch.manual_seed(1)
    first = adaptor.gates(x)
    torch.manual_seed(2)
    assert not torch.allclose(first, adaptor.gates(x))
