r"""Rotary position embedding (RoPE) as pure functions — paper Eq. (1)–(4).

E²-LLM (arXiv 2401.06951, §3.1) builds on RoPE (Su et al., 2021). For a head of even dimension
``d`` the frequencies are

.. math::  \theta_j = b^{-2j/d}, \qquad j = 0, \dots, d/2 - 1, \qquad b = 10000        \tag{1}

and a vector at position ``m`` has its ``j``-th coordinate pair rotated by the angle ``m\,\theta_j``.

**Pairing convention.** The paper (and Meta's original Llama code) writes Eq. (1) with complex
numbers built from *adjacent* coordinates ``(x_{2j}, x_{2j+1})``. Hugging Face ``transformers``
pairs coordinate ``j`` with coordinate ``j + d/2`` ("half-split", ``rotate_half``), because its
checkpoints were permuted on conversion. Both are the same rotation after a fixed permutation of
the coordinates: :func:`interleaved_to_half` / :func:`half_to_interleaved` map between them, and
``tests/core/test_rope.py`` pins that they agree. Everything that touches a real model uses half-split.

The attention score of Eq. (2), ``a(m, n) = Re⟨f(q, m), f(k, n)⟩``, depends only on ``m − n``.
Position Interpolation (Eq. 3–4, Chen et al., 2023) squeezes a window ``L' = g·L`` into the trained
range by using position ``m / g`` instead of ``m`` — transformers' ``rope_type="linear"``.
E² (Eq. 5) generalises this to ``(m + t) / g``; see :mod:`e2llm_lite.augment`.

Angles are computed in float32 on purpose (as transformers does): positions up to 10^5 times
frequencies near 1 need the mantissa.
"""
from __future__ import annotations

import math

import torch

__all__ = [
    "inv_freq",
    "rope_angles",
    "cos_sin",
    "rotate_half",
    "apply_rope",
    "apply_rope_complex",
    "interleaved_to_half",
    "half_to_interleaved",
    "score",
    "pi_positions",
    "e2_positions",
    "wavelengths",
]


def _check_dim(dim: int) -> None:
    if not isinstance(dim, int) or dim <= 0 or dim % 2:
        raise ValueError(f"head dimension must be a positive even integer, got dim={dim!r}")


def inv_freq(dim: int, base: float = 10000.0) -> torch.Tensor:
    r"""Eq. (1): the ``d/2`` RoPE frequencies :math:`\theta_j = b^{-2j/d}` (float32, shape ``(d/2,)``)."""
    _check_dim(dim)
    if base <= 1:
        raise ValueError(f"RoPE base must be > 1, got base={base!r}")
    # \theta_j = base^{-2j/d},  j = 0 .. d/2-1
    j = torch.arange(0, dim, 2, dtype=torch.int64).float()
    return 1.0 / (base ** (j / dim))


def wavelengths(dim: int, base: float = 10000.0) -> torch.Tensor:
    r"""Wavelength in tokens of each frequency, :math:`2\pi/\theta_j` (fastest pair first)."""
    return 2 * math.pi / inv_freq(dim, base)


def rope_angles(positions: torch.Tensor | float | int, dim: int, base: float = 10000.0) -> torch.Tensor:
    r"""Angles :math:`m\,\theta_j` for integer **or float** positions ``m``.

    ``positions`` of shape ``(...)`` gives angles of shape ``(..., d/2)`` in float32. Float positions
    are what PI (``m/g``) and E² (``(m+t)/g``) feed in.
    """
    pos = torch.as_tensor(positions).to(torch.float32)
    # m * \theta_j, broadcast over the trailing frequency axis
    return pos[..., None] * inv_freq(dim, base)


def cos_sin(positions: torch.Tensor | float | int, dim: int, base: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of the angles, duplicated to length ``d`` in the half-split layout HF uses."""
    ang = rope_angles(positions, dim, base)
    emb = torch.cat((ang, ang), dim=-1)  # (..., d): pair j lives at coordinates j and j + d/2
    return emb.cos(), emb.sin()


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """``(x1, x2) -> (-x2, x1)`` for the two halves of the last axis (multiplication by ``i``)."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rope(x: torch.Tensor, positions: torch.Tensor | float | int, base: float = 10000.0) -> torch.Tensor:
    r"""Eq. (1) in the half-split pairing: rotate pair ``(x_j, x_{j+d/2})`` by :math:`m\,\theta_j`.

    ``x``: ``(..., seq, d)``; ``positions``: ``(seq,)`` or broadcastable to ``x.shape[:-1]``.
    The computation runs in float32 and returns ``x.dtype``.
    """
    dim = x.shape[-1]
    cos, sin = cos_sin(positions, dim, base)
    xf = x.float()
    # f(x, m) = x \cos(m\theta) + rotate\_half(x) \sin(m\theta)
    return (xf * cos + rotate_half(xf) * sin).to(x.dtype)


def apply_rope_complex(x: torch.Tensor, positions: torch.Tensor | float | int, base: float = 10000.0) -> torch.Tensor:
    r"""Eq. (1) as the paper writes it: adjacent pairs as complex numbers times :math:`e^{i m \theta_j}`.

    Teaching form (interleaved pairing, as in Meta's Llama reference). Equal to :func:`apply_rope`
    after :func:`interleaved_to_half`.
    """
    dim = x.shape[-1]
    _check_dim(dim)
    z = torch.view_as_complex(x.float().reshape(*x.shape[:-1], dim // 2, 2).contiguous())
    ang = rope_angles(positions, dim, base)
    # f(x, m)_j = (x_{2j} + i x_{2j+1}) e^{i m \theta_j}
    rotated = z * torch.polar(torch.ones_like(ang), ang)
    return torch.view_as_real(rotated).reshape(x.shape).to(x.dtype)


def interleaved_to_half(x: torch.Tensor) -> torch.Tensor:
    """Permute ``(x0, x1, x2, x3, …)`` -> ``(x0, x2, …, x1, x3, …)``: adjacent pairs to half-split pairs."""
    _check_dim(x.shape[-1])
    return torch.cat((x[..., 0::2], x[..., 1::2]), dim=-1)


def half_to_interleaved(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`interleaved_to_half`."""
    dim = x.shape[-1]
    _check_dim(dim)
    a, b = x[..., : dim // 2], x[..., dim // 2 :]
    return torch.stack((a, b), dim=-1).reshape(x.shape)


def score(q: torch.Tensor, k: torch.Tensor, m, n, base: float = 10000.0) -> torch.Tensor:
    r"""Eq. (2): :math:`a(m, n) = \mathrm{Re}\langle f(q, m), f(k, n)\rangle` — depends only on ``m − n``.

    ``q``, ``k``: ``(..., d)``; ``m``, ``n``: positions (scalars or tensors broadcastable to the
    batch shape). Returns the real dot product of the rotated vectors (float32).
    """
    # rotated vectors broadcast over the position shapes of m and n
    qr = apply_rope(q.float(), torch.as_tensor(m, dtype=torch.float32), base)
    kr = apply_rope(k.float(), torch.as_tensor(n, dtype=torch.float32), base)
    return (qr * kr).sum(-1)


def pi_positions(positions: torch.Tensor | int, g: float) -> torch.Tensor:
    r"""Eq. (3)–(4), Position Interpolation: position :math:`m/g` for a window ``g`` times longer."""
    if not g >= 1:
        raise ValueError(f"scale g must be >= 1 (g = L'/L), got g={g!r}")
    return torch.as_tensor(positions).to(torch.float32) / g


def e2_positions(positions: torch.Tensor | int, t: float | torch.Tensor, g: float | torch.Tensor) -> torch.Tensor:
    r"""Eq. (5): the rotary position :math:`(m + t)/g` (``t`` = 0, ``g`` = 1 is plain RoPE)."""
    g_t = torch.as_tensor(g, dtype=torch.float32)
    t_t = torch.as_tensor(t, dtype=torch.float32)
    if bool((g_t < 1).any()):
        raise ValueError(f"scale g must be >= 1, got g={g!r}")
    if bool((t_t < 0).any()):
        raise ValueError(f"offset t must be >= 0, got t={t!r}")
    return (torch.as_tensor(positions).to(torch.float32) + t_t) / g_t
