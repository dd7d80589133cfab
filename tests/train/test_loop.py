"""Tests for e2llm_lite.train.loop: Algorithm 1 loop, exact resume, checkpoints, schedules, hooks."""
import math

import pytest
import torch

from e2llm_lite import augment
from e2llm_lite.augment import AugmentConfig
from e2llm_lite.data import PackedWindows
from e2llm_lite.models import tiny_model
from e2llm_lite.train.loop import TrainConfig, load_checkpoint, lr_lambda, train


def _model():
    return tiny_model(vocab_size=64, hidden_size=32, num_layers=2, num_heads=2, base_window=16, seed=1)


def _data(seq_len=16, batch_size=2):
    return PackedWindows(torch.arange(3000) * 7 % 64, seq_len, batch_size, seed=5)


def _cfg(**kw):
    base = dict(steps=6, lr=3e-3, batch_size=2, grad_accum=2, seed=11, scheme="e2", log_every=1,
                augment=AugmentConfig(base_window=16, train_len=16, g_max=4, n_sink=2))
    base.update(kw)
    return TrainConfig(**base)


def test_resume_is_bit_identical(tmp_path):
    # uninterrupted run
    full = _model()
    r_full = train(full, _data(), _cfg(), progress=False)
    # the same run stopped after 3 steps (checkpoint), then resumed in a fresh process-like setup
    part = _model()
    train(part, _data(), _cfg(steps=3, checkpoint_dir=str(tmp_path)), progress=False)
    torch.manual_seed(12345)  # disturb global RNG: resume must restore it
    resumed = _model()
    r_res = train(resumed, _data(), _cfg(checkpoint_dir=str(tmp_path)), progress=False)
    assert r_res.resumed_from == 3 and r_res.step == 6
    for (n, a), (_, b) in zip(full.named_parameters(), resumed.named_parameters()):
        assert torch.equal(a, b), n
    assert [h["loss"] for h in r_res.history] == [h["loss"] for h in r_full.history]
    assert [h["g"] for h in r_res.history] == [h["g"] for h in r_full.history]


def test_checkpoint_loads_weights_only_and_no_tmp_left(tmp_path):
    m = _model()
    train(m, _data(), _cfg(steps=2, checkpoint_dir=str(tmp_path), checkpoint_every=1), progress=False)
    weights, state = load_checkpoint(tmp_path)  # torch.load(weights_only=True) inside
    assert state["step"] == 2 and len(state["history"]) == 2
    assert set(weights) == {n for n, p in m.named_parameters()}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]
    # a finished run called again does nothing
    r = train(m, _data(), _cfg(steps=2, checkpoint_dir=str(tmp_path)), progress=False)
    assert r.resumed_from == 2 and r.history == state["history"]


def test_draws_are_a_function_of_seed_and_step():
    cfg = _cfg(steps=5, grad_accum=1)
    r = train(_model(), _data(), cfg, progress=False)
    expect = [augment.sample(cfg.augment, augment.step_generator(cfg.seed, i), 2, "e2") for i in range(5)]
    assert [h["g"] for h in r.history] == [int(d.scale[0]) for d in expect]
    assert [h["t"] for h in r.history] == [int(d.shift[0]) for d in expect]
    r_none = train(_model(), _data(), _cfg(steps=3, scheme="none"), progress=False)
    assert {h["g"] for h in r_none.history} == {1}


def test_pi_trains_on_long_sequences():
    cfg = _cfg(steps=2, scheme="pi", augment=AugmentConfig(base_window=16, train_len=64, g_max=4, fixed_scale=4))
    r = train(_model(), _data(seq_len=64, batch_size=1), cfg, progress=False)
    assert {h["g"] for h in r.history} == {4}


def test_only_trainable_parameters_change():
    m = _model()
    for n, p in m.named_parameters():
        p.requires_grad = "layers.1" in n
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    train(m, _data(), _cfg(steps=2), progress=False)
    for n, p in m.named_parameters():
        assert torch.equal(p, before[n]) != ("layers.1" in n), n


def test_loss_matches_hf_loss_and_extra_loss_is_added():
    # with lr tiny the first logged loss is the model's own LM loss at the first draw
    m = _model()
    cfg = _cfg(steps=1, grad_accum=1, scheme="none")
    batch = _data().get_batch(0)
    with torch.no_grad():
        ref = float(m(input_ids=batch, labels=batch).loss)
    r = train(m, _data(), cfg, progress=False)
    assert math.isclose(r.history[0]["loss"], ref, rel_tol=1e-5)
    seen = []
    r2 = train(_model(), _data(), cfg, progress=False,
               extra_loss=lambda out, ids, idx, draw: seen.append(idx) or out.logits.new_tensor(1.5))
    assert seen == [0] and math.isclose(r2.history[0]["loss"], ref + 1.5, rel_tol=1e-5)


def test_on_step_record_is_kept():
    r = train(_model(), _data(), _cfg(steps=3), progress=False, on_step=lambda s, m, rec: {"probe": s * 10})
    assert [h["probe"] for h in r.history] == [10, 20, 30]


def test_lr_schedules():
    f = lr_lambda(TrainConfig(steps=10, warmup_steps=4, schedule="cosine"))
    assert [round(f(s), 3) for s in (0, 3)] == [0.25, 1.0]
    assert math.isclose(f(4), 1.0) and math.isclose(f(10), 0.1)
    g = lr_lambda(TrainConfig(steps=10, warmup_steps=0))
    assert {g(s) for s in range(10)} == {1.0}


@pytest.mark.parametrize("kw, match", [({"schedule": "linear"}, "schedule"), ({"scheme": "yarn"}, "scheme"),
                                       ({"grad_accum": 0}, "grad_accum"), ({"lr": 0.0}, "lr")])
def test_bad_config(kw, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kw)
