"""e2llm_lite.rope against hand-derived values and Hugging Face's own rotary code (Eq. 1-4)."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import LlamaConfig
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb

from e2llm_lite import rope


def hf_rotary(dim, base, positions, factor=None):
    params = {"rope_type": "default", "rope_theta": base}
    if factor is not None:
        params = {"rope_type": "linear", "factor": factor, "rope_theta": base}
    cfg = LlamaConfig(hidden_size=dim * 2, num_attention_heads=2, head_dim=dim, rope_parameters=params)
    emb = LlamaRotaryEmbedding(cfg)
    x = torch.zeros(1, positions.shape[-1], dim)
    return emb(x, positions[None])


def test_inv_freq_hand_values():
    # d = 4, b = 10000: theta_0 = 1, theta_1 = 10000^(-2/4) = 0.01
    torch.testing.assert_close(rope.inv_freq(4), torch.tensor([1.0, 0.01]))
    torch.testing.assert_close(rope.wavelengths(4), torch.tensor([2 * math.pi, 200 * math.pi]))


def test_rotation_hand_values_dim2():
    # d = 2: one pair rotated by angle m (theta_0 = 1)
    x = torch.tensor([[1.0, 0.0]])
    for m in [0, 1, 2.5]:
        torch.testing.assert_close(rope.apply_rope(x, torch.tensor([m])), torch.tensor([[math.cos(m), math.sin(m)]]))


@pytest.mark.parametrize("dim,base", [(8, 10000.0), (64, 10000.0), (128, 500000.0)])
@pytest.mark.parametrize("kind", ["int", "float"])
def test_cos_sin_and_apply_match_hugging_face(dim, base, kind):
    g = torch.Generator().manual_seed(dim)
    pos = torch.arange(300) if kind == "int" else torch.rand(300, generator=g) * 4096
    cos_hf, sin_hf = hf_rotary(dim, base, pos)
    cos, sin = rope.cos_sin(pos, dim, base)
    torch.testing.assert_close(cos, cos_hf[0])
    torch.testing.assert_close(sin, sin_hf[0])
    q = torch.randn(1, 2, 300, dim, generator=g)
    k = torch.randn(1, 2, 300, dim, generator=g)
    q_hf, k_hf = apply_rotary_pos_emb(q, k, cos_hf, sin_hf)
    torch.testing.assert_close(rope.apply_rope(q, pos, base), q_hf)
    torch.testing.assert_close(rope.apply_rope(k, pos, base), k_hf)


def test_pi_positions_equal_hf_linear_scaling():
    pos = torch.arange(512)
    cos_hf, sin_hf = hf_rotary(32, 10000.0, pos, factor=4.0)
    cos, sin = rope.cos_sin(rope.pi_positions(pos, 4), 32)
    torch.testing.assert_close(cos, cos_hf[0])
    torch.testing.assert_close(sin, sin_hf[0])


def test_complex_form_equals_half_split_after_permutation():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 17, 16, generator=g)
    pos = torch.arange(17) * 3.5
    lhs = rope.interleaved_to_half(rope.apply_rope_complex(x, pos))
    rhs = rope.apply_rope(rope.interleaved_to_half(x), pos)
    torch.testing.assert_close(lhs, rhs)
    # and the permutation round-trips
    torch.testing.assert_close(rope.half_to_interleaved(rope.interleaved_to_half(x)), x)


@settings(max_examples=60, deadline=None)
@given(
    m=st.integers(0, 5000),
    n=st.integers(0, 5000),
    k=st.integers(-2000, 2000),
    seed=st.integers(0, 2**16),
)
def test_score_depends_only_on_distance(m, n, k, seed):
    """Eq. (2): a(m, n) = a(m + k, n + k)."""
    if m + k < 0 or n + k < 0:
        k = -min(m, n)
    g = torch.Generator().manual_seed(seed)
    q, kv = torch.randn(64, generator=g), torch.randn(64, generator=g)
    a = rope.score(q, kv, m, n)
    b = rope.score(q, kv, m + k, n + k)
    assert abs(float(a - b)) < 2e-3 * (1 + abs(float(a)))


def test_score_at_zero_distance_is_dot_product():
    g = torch.Generator().manual_seed(2)
    q, k = torch.randn(32, generator=g), torch.randn(32, generator=g)
    torch.testing.assert_close(rope.score(q, k, 7, 7), (q * k).sum())


def test_e2_positions_eq5():
    pos = torch.arange(8)
    torch.testing.assert_close(rope.e2_positions(pos, 10, 4), (pos.float() + 10) / 4)
    torch.testing.assert_close(rope.e2_positions(pos, 0, 1), pos.float())


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: rope.inv_freq(7), "dim=7"),
        (lambda: rope.inv_freq(0), "dim=0"),
        (lambda: rope.inv_freq(8, base=1.0), "base=1.0"),
        (lambda: rope.pi_positions(torch.arange(3), 0.5), "g=0.5"),
        (lambda: rope.e2_positions(torch.arange(3), -1, 2), "t=-1"),
        (lambda: rope.e2_positions(torch.arange(3), 1, 0.5), "g=0.5"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
