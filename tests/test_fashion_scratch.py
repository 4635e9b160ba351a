"""The from-scratch pieces agree with torch and do not break where the book's versions do."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pipeline.fashion import scratch
from pipeline.fashion.models import build_classifier
from pipeline.fashion.optim import ScratchAdam, ScratchSGD, scheduled_lr


def logits_and_labels(scale: float = 3.0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return scale * torch.randn(64, 10, generator=g), torch.randint(0, 10, (64,), generator=g)


def test_softmax_and_cross_entropy_match_torch():
    logits, labels = logits_and_labels()
    torch.testing.assert_close(scratch.softmax(logits), F.softmax(logits, dim=1))
    torch.testing.assert_close(scratch.log_softmax(logits), F.log_softmax(logits, dim=1))
    torch.testing.assert_close(scratch.cross_entropy(logits, labels),
                               F.cross_entropy(logits, labels))


def test_large_logits_stay_finite_where_naive_exp_overflows():
    logits = torch.tensor([[1000.0, 0.0, -1000.0], [1000.0, 1000.0, 999.0]])
    labels = torch.tensor([2, 0])
    assert torch.isinf(torch.exp(logits)).any()  # what the book's softmax would hit
    probs = scratch.softmax(logits)
    loss = scratch.cross_entropy(logits, labels)
    assert torch.isfinite(probs).all() and torch.isfinite(loss)
    torch.testing.assert_close(probs, F.softmax(logits, dim=1))
    torch.testing.assert_close(loss, F.cross_entropy(logits, labels))
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(2))


def test_cross_entropy_gradient_matches_torch():
    logits, labels = logits_and_labels(scale=50.0)
    mine = logits.clone().requires_grad_()
    ref = logits.clone().requires_grad_()
    scratch.cross_entropy(mine, labels).backward()
    F.cross_entropy(ref, labels).backward()
    assert torch.isfinite(mine.grad).all()
    torch.testing.assert_close(mine.grad, ref.grad)


def test_relu_matches_torch():
    x = torch.linspace(-3, 3, 13)
    torch.testing.assert_close(scratch.relu(x), F.relu(x))


@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
def test_dropout_keeps_the_mean_and_drops_about_p(p):
    x = torch.ones(200_000)
    out = scratch.dropout(x, p, torch.Generator().manual_seed(1))
    assert abs(float(out.mean()) - 1.0) < 0.02
    assert abs(float((out == 0).float().mean()) - p) < 0.01
    kept = out[out != 0]
    torch.testing.assert_close(kept, torch.full_like(kept, 1 / (1 - p)))


def test_dropout_p0_is_identity_and_p1_is_zeros():
    x = torch.randn(5, 7)
    assert scratch.dropout(x, 0.0) is x
    assert torch.equal(scratch.dropout(x, 1.0), torch.zeros_like(x))


def test_dropout_rejects_probabilities_outside_unit_interval():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        scratch.dropout(torch.ones(3), 1.5)


def test_scratch_dropout_mlp_is_deterministic_in_eval_mode_only():
    torch.manual_seed(0)
    model = build_classifier("dropout_scratch", (256,), (64, 64), (0.5, 0.5)).model
    x = torch.rand(8, 784)
    model.train()
    assert not torch.equal(model(x), model(x))  # fresh masks every call
    model.eval()
    assert torch.equal(model(x), model(x))
    layers = model.layers  # eval output is the plain network, no masks, no scaling
    h = scratch.relu(layers[1](scratch.relu(layers[0](x))))
    torch.testing.assert_close(model(x), layers[2](h))


@pytest.mark.parametrize("name,torch_twin", [("softmax_scratch", "softmax"),
                                             ("mlp_scratch", "mlp"),
                                             ("dropout_scratch", "dropout")])
def test_scratch_models_mirror_their_torch_twins(name, torch_twin):
    mine = build_classifier(name, (32,), (32, 16), (0.2, 0.5)).model
    twin = build_classifier(torch_twin, (32,), (32, 16), (0.2, 0.5)).model
    assert sorted(p.numel() for p in mine.parameters()) == \
        sorted(p.numel() for p in twin.parameters())
    assert mine(torch.rand(3, 784)).shape == twin(torch.rand(3, 784)).shape == (3, 10)


def _run(opt_factory, steps: int = 5) -> torch.Tensor:
    w = torch.nn.Parameter(torch.linspace(-1, 1, 6).reshape(2, 3))
    opt = opt_factory([w])
    for step in range(steps):
        loss = ((w * (step + 1)) ** 2).sum() + w.sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return w.detach()


def test_scratch_sgd_with_momentum_and_decay_matches_torch():
    torch.testing.assert_close(
        _run(lambda ps: ScratchSGD(ps, lr=0.01, momentum=0.9, weight_decay=0.1)),
        _run(lambda ps: torch.optim.SGD(ps, lr=0.01, momentum=0.9, weight_decay=0.1)))


def test_scratch_adam_matches_torch():
    torch.testing.assert_close(
        _run(lambda ps: ScratchAdam(ps, lr=0.01, weight_decay=0.01)),
        _run(lambda ps: torch.optim.Adam(ps, lr=0.01, weight_decay=0.01)))


def test_cosine_schedule_decays_from_base_to_zero():
    assert scheduled_lr("cosine", 0.1, 0, 100) == pytest.approx(0.1)
    assert scheduled_lr("cosine", 0.1, 50, 100) == pytest.approx(0.05)
    assert scheduled_lr("cosine", 0.1, 100, 100) == pytest.approx(0.0, abs=1e-12)
    assert scheduled_lr("constant", 0.1, 77, 100) == 0.1
