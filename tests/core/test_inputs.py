"""Hand-built draws and sampler inputs are validated.

A float scale is never truncated silently, g outside G = {1..G_max} never reaches the model, an empty
window is refused, and integer-like numbers (NumPy, 0-d torch) are accepted — or refused with a
message about their *type*.
"""
import math

import numpy as np
import pytest
import torch

from e2llm_lite.augment import AugmentConfig, Draw, sample
from e2llm_lite.hf import e2_context, rope_scale, scale_for_length
from e2llm_lite.models import tiny_model


def _draw(scale, shift=None, rows=1, r=8):
    scale = torch.as_tensor(scale)
    shift = torch.zeros(scale.shape, dtype=torch.int64) if shift is None else torch.as_tensor(shift)
    return Draw(scale=scale, shift=shift, position_ids=torch.arange(r).repeat(rows, 1))


def test_float_scale_is_refused_not_truncated():
    with pytest.raises(ValueError, match=r"integers g >= 1 .*truncated\), got 2.5"):
        _draw([2.5])
    d = _draw([2.0])  # integer-valued float: accepted, stored as an integer
    assert d.scale.dtype == torch.int64 and d.uniform_scale == 2


@pytest.mark.parametrize("g", [0.0, -1.0, 0.5, math.nan, math.inf])
def test_per_sample_scales_outside_G_are_refused(g):
    with pytest.raises(ValueError, match="Draw.scale must hold integers g >= 1"):
        _draw([2.0, g], rows=2)


@pytest.mark.parametrize("g", [0, -1])
def test_integer_scales_below_one_are_refused(g):
    with pytest.raises(ValueError, match=f"got g={g} in row 1"):
        _draw(torch.tensor([3, g]), rows=2)


def test_negative_offset_and_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="t >= 0"):
        _draw(torch.tensor([2]), shift=torch.tensor([-3]))
    with pytest.raises(ValueError, match=r"shape \(B, R\)"):
        Draw(scale=torch.tensor([1, 1]), shift=torch.tensor([0, 0]), position_ids=torch.arange(8).repeat(3, 1))
    with pytest.raises(TypeError, match="must be a torch.Tensor, got list"):
        Draw(scale=[2], shift=torch.tensor([0]), position_ids=torch.arange(8)[None])


def test_e2_context_rechecks_a_draw_edited_after_sampling():
    model = tiny_model(num_layers=1, hidden_size=16, num_heads=2, vocab_size=32, base_window=8)
    cfg = AugmentConfig(base_window=8, train_len=8, g_max=4, per_sample=True)
    draw = sample(cfg, 0, batch_size=2)
    draw.scale = torch.tensor([0.5, 2.0])  # per-sample path: float positions (m + t)/g would pass 0.5 through
    ids = torch.zeros(2, 8, dtype=torch.long)
    with pytest.raises(ValueError, match="Draw.scale"):
        with e2_context(model, draw, ids):
            pass


def test_sample_refuses_an_empty_window_and_accepts_integer_like_lengths():
    cfg = AugmentConfig(base_window=8, train_len=8, g_max=4)
    with pytest.raises(ValueError, match=r"seq_len must be an integer >= 1, got seq_len=0"):
        sample(cfg, 0, seq_len=0)
    for n in (np.int64(5), torch.tensor(5)):
        assert sample(cfg, 0, seq_len=n).position_ids.shape == (1, 5)
    with pytest.raises(TypeError, match="got seq_len=float 5.0"):
        sample(cfg, 0, seq_len=5.0)


def test_scale_for_length_types():
    assert scale_for_length(np.int64(4097), 4096) == 2  # ceil(4097 / 4096)
    assert scale_for_length(torch.tensor(8193), np.int32(4096)) == 3  # ceil(8193 / 4096)
    with pytest.raises(TypeError, match="got n_tokens=bool True"):
        scale_for_length(True, 4096)
    with pytest.raises(TypeError, match="not a float tensor"):
        scale_for_length(torch.tensor(2.0), 4096)
    with pytest.raises(TypeError, match="got n_tokens=float 2.5"):
        scale_for_length(2.5, 4096)


def test_rope_scale_accepts_numpy_and_tensor_scalars():
    model = tiny_model(num_layers=1, hidden_size=16, num_heads=2, vocab_size=32, base_window=8)
    ids = torch.arange(24)[None] % 32
    with torch.no_grad(), rope_scale(model, 2):
        want = model(input_ids=ids).logits
    for g in (np.int64(2), np.float32(2.0), torch.tensor(2.0), torch.tensor([2])):
        with torch.no_grad(), rope_scale(model, g):
            assert torch.equal(model(input_ids=ids).logits, want), g
    with pytest.raises(TypeError, match="must be a real number .*got g=str '2'"):
        with rope_scale(model, "2"):
            pass
    with pytest.raises(ValueError, match=r"finite number >= 1, got g=0.5"):
        with rope_scale(model, np.float64(0.5)):
            pass
