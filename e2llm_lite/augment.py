r"""E² dual augmentation — paper Eq. (5)–(7) and Algorithm 1.

At every training iteration ``i`` E²-LLM (arXiv 2401.06951, §3.2) draws

* a **scale** :math:`g_i \in G = \{1, 2, \dots, G_{max}\}` from a distribution ``P`` (uniform by
  default), Eq. (6);
* an **offset** :math:`t_i \in T = \{0, \dots, T_{max}\}`, :math:`T_{max} = L \cdot g_i - R`, from
  ``Q`` (uniform), Eq. (7);

and trains on a window of ``R`` tokens whose rotary positions are

.. math:: m' = (m + t_i) / g_i \quad (m \ge n_{sink}), \qquad m' = m / g_i \quad (m < n_{sink}),  \tag{5}

so the first ``n_sink`` = 4 tokens (attention sinks, Xiao et al. 2023) keep their place and every
scaled position stays inside the base model's trained range ``[0, L)``: the largest one is
``(R − 1 + L·g − R)/g = L − 1/g``.

Note (follows from Eq. 2): RoPE scores depend only on position *differences*, so shifting **every**
token by ``t`` changes nothing. The offset acts only through the sinks — sink keys see query
distances ``m + t − n`` (Eq. 8) that a plain window of ``R`` tokens never shows. With ``n_sink = 0``
offsets are a no-op up to float rounding; the ``sinks ∈ {0, 2, 4, 6}`` ablation (Table 5) is
therefore also an ablation of the offset's reach.

**Per iteration or per sample.** Eq. (6) draws ``g`` per iteration; Fig. 2's caption speaks of
samples. :class:`AugmentConfig.per_sample` switches: ``False`` (default, Eq. 6) draws one ``(g, t)``
for the whole batch, ``True`` one pair per sequence.

**Scale families.** :attr:`AugmentConfig.family` names how each drawn ``g`` is applied to the
frequencies — ``linear`` (the paper's PI, Eq. 4), ``ntk`` or ``yarn`` (:mod:`e2llm_lite.scaling`).
The draw of ``(g, t)`` does not depend on it; per-sample draws need ``linear``.

Schemes share one signature ``scheme(cfg, generator, batch_size) -> Draw`` and live in
:data:`SCHEMES`: ``none``, ``pi``, ``e2``, ``e2-no-offset``, ``e2-fixed-scale`` (Table 4 ablations).
A future PoSE scheme (chunked skips) returns its own ``position_ids`` through the same ``Draw``.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from e2llm_lite.scaling import check_family
from e2llm_lite.validation import ArgumentTypeError, check_int, describe

__all__ = [
    "AugmentConfig",
    "Draw",
    "SCHEMES",
    "register_scheme",
    "sample",
    "max_offset",
    "e2_position_ids",
    "make_generator",
    "step_generator",
    "sample_for_step",
]


@dataclass
class AugmentConfig:
    """Knobs of Algorithm 1. Defaults are the paper's (Llama-2: L = R = 4096, G_max = 20, 4 sinks)."""

    base_window: int = 4096  # L: the window the base model was pre-trained on
    train_len: int = 4096  # R: tokens per training sequence (the paper keeps R = L = 4K)
    g_max: int = 20  # G_max: scales drawn from G = {1, ..., G_max} (paper §4.1: 20 -> up to 80K)
    n_sink: int = 4  # initial tokens whose offset is always 0 (attention sinks, Eq. 7)
    scale_probs: Sequence[float] | None = None  # P over G (len G_max); None = uniform (Eq. 6)
    offsets: bool = True  # draw t from {0..L*g-R} (Eq. 7); False = t = 0 ("no offset", Table 4)
    fixed_scale: int | None = None  # g for `pi` and `e2-fixed-scale` (paper's ablation: g = 4)
    per_sample: bool = False  # False: one (g, t) per iteration (Eq. 6); True: one per sequence (Fig. 2)
    family: str = "linear"  # how a g moves the frequencies: linear (paper, Eq. 4), ntk, yarn (see scaling.py)

    def __post_init__(self) -> None:
        for name in ("base_window", "train_len", "g_max"):
            v = getattr(self, name)
            object.__setattr__(self, name, check_int(name, v, 1))
        object.__setattr__(self, "n_sink", check_int("n_sink", self.n_sink, 0, self.train_len - 1, note=f"below R = train_len = {self.train_len}"))
        check_family(self.family)
        if self.per_sample and self.family != "linear":
            raise ValueError(
                f"per_sample=True needs family='linear' (rows with different g are applied as float positions "
                f"(m + t)/g, which only linear scaling equals); got family={self.family!r} — use per_sample=False"
            )
        if self.fixed_scale is not None:
            object.__setattr__(self, "fixed_scale", check_int("fixed_scale", self.fixed_scale, 1, note="a scale g"))
        if self.scale_probs is not None:
            p = torch.as_tensor(list(self.scale_probs), dtype=torch.float64)
            if p.numel() != self.g_max:
                raise ValueError(
                    f"scale_probs needs one probability per g in G = {{1..{self.g_max}}} "
                    f"({self.g_max} values), got {p.numel()}"
                )
            if bool((p < 0).any()) or not math.isclose(float(p.sum()), 1.0, abs_tol=1e-6):
                raise ValueError(
                    f"scale_probs must be >= 0 and sum to 1, got sum={float(p.sum()):.6g} and min={float(p.min()):.6g}"
                )
        # the smallest scale that can hold R tokens: L*g >= R
        g_min = self.min_scale
        if g_min > self.g_max:
            raise ValueError(
                f"train_len R={self.train_len} does not fit the largest window L*G_max = "
                f"{self.base_window}*{self.g_max} = {self.base_window * self.g_max}; need R <= L*G_max"
            )
        if self.scale_probs is not None and float(torch.as_tensor(list(self.scale_probs))[: g_min - 1].sum()) > 0:
            raise ValueError(
                f"scale_probs gives weight to g < {g_min}, but R={self.train_len} > L*g for those g "
                f"(L={self.base_window}); valid g are {g_min}..{self.g_max}"
            )

    @property
    def min_scale(self) -> int:
        """Smallest g with ``L·g ≥ R`` (1 when R ≤ L)."""
        return max(1, -(-self.train_len // self.base_window))

    def probs(self) -> torch.Tensor:
        """``P`` over ``G`` as a float64 tensor of length ``G_max`` (index ``g − 1``)."""
        if self.scale_probs is not None:
            return torch.as_tensor(list(self.scale_probs), dtype=torch.float64)
        p = torch.zeros(self.g_max, dtype=torch.float64)
        p[self.min_scale - 1 :] = 1.0
        return p / p.sum()


@dataclass
class Draw:
    """One draw of Algorithm 1 for a batch: scales, offsets and the window's position ids."""

    scale: torch.Tensor  # (B,) int64: g per sequence (all equal when drawn per iteration)
    offset: torch.Tensor  # (B,) int64: t per sequence
    position_ids: torch.Tensor  # (B, R) int64: m for sinks, m + t after them
    scheme: str = ""
    extra: dict = field(default_factory=dict)
    family: str = "linear"  # RoPE scale family that applies g (e2llm_lite.scaling.FAMILIES)
    base_window: int | None = None  # L of the draw's config (YaRN's original window); None = the model's

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> "Draw":
        """Validate the draw — also one built by hand — and return it: ``scale`` holds integers g ≥ 1
        (G = {1, …, G_max}, Eq. 6), ``offset`` integers t ≥ 0 (Eq. 7), one per sequence (or one for all),
        ``position_ids`` is ``(B, R)`` with R ≥ 1. Integer-valued float tensors (``2.``) are accepted and
        stored as int64; 2.5, 0, −1, nan are rejected with the row and value (a float g would otherwise be
        truncated by :attr:`uniform_scale`, and g < 1 or nan gives positions past L or non-finite logits)."""
        for name in ("scale", "offset", "position_ids"):
            v = getattr(self, name)
            if not isinstance(v, torch.Tensor):
                raise ArgumentTypeError(f"Draw.{name} must be a torch.Tensor, got {describe(v)}")
            if v.dtype == torch.bool or v.is_complex():
                raise ArgumentTypeError(f"Draw.{name} must be an integer tensor, got dtype {v.dtype}")
            if v.is_floating_point():
                bad = ~torch.isfinite(v) | (v != v.round())
                if bool(bad.any()):
                    what = {"scale": "integers g >= 1 (G = {1..G_max}, Eq. 6; a float g would be truncated)",
                            "offset": "integers t >= 0 (Eq. 7)"}.get(name, "integer positions")
                    raise ValueError(f"Draw.{name} must hold {what}, got {v[bad].flatten()[0].item()!r} "
                                     f"at index {tuple(i.item() for i in bad.nonzero()[0])}")
                setattr(self, name, v.to(torch.int64))
        s, t, pos = self.scale, self.offset, self.position_ids
        if s.dim() != 1 or s.numel() == 0 or t.shape != s.shape:
            raise ValueError(f"Draw.scale and Draw.offset must both have shape (B,), got {tuple(s.shape)} and {tuple(t.shape)}")
        if pos.dim() != 2 or pos.shape[1] == 0 or s.numel() not in (1, pos.shape[0]):
            raise ValueError(f"Draw.position_ids must have shape (B, R) with R >= 1 and B = {s.numel()} rows, "
                             f"got {tuple(pos.shape)}")
        if bool((s < 1).any()):
            i = int((s < 1).nonzero()[0])
            raise ValueError(f"Draw.scale must hold integers g >= 1 (G = {{1..G_max}}, Eq. 6), got g={s[i].item()} in row {i}")
        if bool((t < 0).any()):
            i = int((t < 0).nonzero()[0])
            raise ValueError(f"Draw.offset must hold integers t >= 0 (Eq. 7), got t={t[i].item()} in row {i}")
        return self

    @property
    def scaled_positions(self) -> torch.Tensor:
        """(B, R) float32 rotary positions ``(m + t)/g`` of Eq. (5)."""
        return self.position_ids.to(torch.float32) / self.scale.to(torch.float32)[:, None]

    @property
    def uniform_scale(self) -> int | None:
        """The single g of the batch, or None when sequences have different g."""
        g = self.scale.unique()
        return int(g.item()) if g.numel() == 1 else None


def make_generator(seed: int | torch.Generator | None) -> torch.Generator:
    """A CPU ``torch.Generator`` from a seed (or pass a generator through)."""
    if isinstance(seed, torch.Generator):
        return seed
    gen = torch.Generator()
    gen.manual_seed(0 if seed is None else int(seed))
    return gen


def max_offset(base_window: int, g: int, train_len: int) -> int:
    r"""Eq. (7): :math:`T_{max} = L \cdot g - R`; raises when the window of R tokens does not fit."""
    if not g >= 1:
        raise ValueError(f"scale g must be >= 1, got g={g!r}")
    t_max = base_window * g - train_len
    if t_max < 0:
        raise ValueError(
            f"R={train_len} tokens do not fit the interpolated window L*g = {base_window}*{g} = "
            f"{base_window * g}: need R <= L*g, i.e. g >= {-(-train_len // base_window)}"
        )
    return t_max


def e2_position_ids(train_len: int, t: int, n_sink: int = 4) -> torch.Tensor:
    """Position ids of one window (Eq. 7): ``0..n_sink−1`` unshifted, then ``m + t``. Shape ``(R,)``."""
    if t < 0:
        raise ValueError(f"offset t must be >= 0, got t={t}")
    if not 0 <= n_sink < train_len:
        raise ValueError(f"n_sink must be in [0, R) = [0, {train_len}), got n_sink={n_sink}")
    m = torch.arange(train_len, dtype=torch.int64)
    return torch.where(m < n_sink, m, m + t)


# --- draws -----------------------------------------------------------------------------------


def _draw_scales(cfg: AugmentConfig, gen: torch.Generator, n: int) -> torch.Tensor:
    """Eq. (6): n scales from P over G = {1..G_max} (int64)."""
    idx = torch.multinomial(cfg.probs().float(), n, replacement=True, generator=gen)
    return idx.to(torch.int64) + 1


def _draw_offsets(cfg: AugmentConfig, scales: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Eq. (7): t uniform on {0..L*g−R} for each scale (int64)."""
    t_max = torch.tensor([max_offset(cfg.base_window, int(g), cfg.train_len) for g in scales], dtype=torch.int64)
    # uniform integer in [0, t_max]: floor(u * (t_max + 1)) with u in [0, 1)
    u = torch.rand(len(scales), generator=gen, dtype=torch.float64)
    return torch.minimum((u * (t_max + 1).double()).floor().to(torch.int64), t_max)


def _assemble(cfg: AugmentConfig, scales: torch.Tensor, offsets: torch.Tensor, batch_size: int, name: str) -> Draw:
    if not cfg.per_sample:  # one (g, t) for the whole iteration
        scales = scales[:1].expand(batch_size).clone()
        offsets = offsets[:1].expand(batch_size).clone()
    pos = torch.stack([e2_position_ids(cfg.train_len, int(t), cfg.n_sink) for t in offsets])
    return Draw(scale=scales, offset=offsets, position_ids=pos, scheme=name)


def _n_draws(cfg: AugmentConfig, batch_size: int) -> int:
    batch_size = check_int("batch_size", batch_size, 1)
    return batch_size if cfg.per_sample else 1


def _fixed(cfg: AugmentConfig, default: int) -> int:
    g = cfg.fixed_scale if cfg.fixed_scale is not None else default
    max_offset(cfg.base_window, g, cfg.train_len)  # validates R <= L*g
    return g


def scheme_none(cfg: AugmentConfig, gen: torch.Generator, batch_size: int) -> Draw:
    """No scaling, no offset: plain RoPE (g = 1, t = 0). Needs R ≤ L."""
    n = _n_draws(cfg, batch_size)
    max_offset(cfg.base_window, 1, cfg.train_len)
    one = torch.ones(n, dtype=torch.int64)
    return _assemble(cfg, one, torch.zeros(n, dtype=torch.int64), batch_size, "none")


def scheme_pi(cfg: AugmentConfig, gen: torch.Generator, batch_size: int) -> Draw:
    """Position Interpolation (Eq. 3–4): one fixed g = ``fixed_scale`` (default R/L), t = 0."""
    n = _n_draws(cfg, batch_size)
    g = _fixed(cfg, cfg.min_scale)
    return _assemble(cfg, torch.full((n,), g, dtype=torch.int64), torch.zeros(n, dtype=torch.int64), batch_size, "pi")


def scheme_e2(cfg: AugmentConfig, gen: torch.Generator, batch_size: int) -> Draw:
    """E² (Algorithm 1): g from P (Eq. 6), t from Q (Eq. 7) unless ``cfg.offsets`` is False."""
    n = _n_draws(cfg, batch_size)
    g = _draw_scales(cfg, gen, n)
    t = _draw_offsets(cfg, g, gen) if cfg.offsets else torch.zeros(n, dtype=torch.int64)
    return _assemble(cfg, g, t, batch_size, "e2")


def scheme_e2_no_offset(cfg: AugmentConfig, gen: torch.Generator, batch_size: int) -> Draw:
    """Table 4 ablation "E²-LLM (no offset)": scale augmentation only, t = 0."""
    n = _n_draws(cfg, batch_size)
    g = _draw_scales(cfg, gen, n)
    return _assemble(cfg, g, torch.zeros(n, dtype=torch.int64), batch_size, "e2-no-offset")


def scheme_e2_fixed_scale(cfg: AugmentConfig, gen: torch.Generator, batch_size: int) -> Draw:
    """Table 4 ablation "E²-LLM (fixed scale)": g = ``fixed_scale`` (paper: 4), offsets drawn."""
    n = _n_draws(cfg, batch_size)
    g = torch.full((n,), _fixed(cfg, 4), dtype=torch.int64)
    t = _draw_offsets(cfg, g, gen)
    return _assemble(cfg, g, t, batch_size, "e2-fixed-scale")


Scheme = Callable[[AugmentConfig, torch.Generator, int], Draw]

#: name -> scheme; every scheme has the signature ``(cfg, generator, batch_size) -> Draw``.
SCHEMES: dict[str, Scheme] = {
    "none": scheme_none,
    "pi": scheme_pi,
    "e2": scheme_e2,
    "e2-no-offset": scheme_e2_no_offset,
    "e2-fixed-scale": scheme_e2_fixed_scale,
}


def register_scheme(name: str, fn: Scheme) -> Scheme:
    """Add a scheme (e.g. PoSE) to :data:`SCHEMES` under ``name``."""
    if name in SCHEMES:
        raise ValueError(f"scheme {name!r} is already registered; choose another name")
    SCHEMES[name] = fn
    return fn


def sample(
    cfg: AugmentConfig,
    seed: int | torch.Generator | None = None,
    batch_size: int = 1,
    scheme: str = "e2",
    seq_len: int | None = None,
    family: str | None = None,
) -> Draw:
    """Draw (g, t) and position ids for one iteration of ``scheme`` (default ``"e2"``).

    ``seed`` is an int or a ``torch.Generator`` (pass the same generator on every iteration for a
    reproducible stream). ``seq_len`` — the length of the batch about to be trained on — is checked
    against R: a longer sequence than R would push positions past the base window. ``family``
    (default ``cfg.family``) only labels the draw with the scale family that will apply it — the
    draw of (g, t) itself (Eq. 6–7) is the same for every family.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown scheme {scheme!r}; valid schemes: {', '.join(sorted(SCHEMES))}")
    if seq_len is not None:
        seq_len = check_int("seq_len", seq_len, 1)  # an empty window trains nothing; > R is refused below
    if seq_len is not None and seq_len > cfg.train_len:
        raise ValueError(
            f"sequence of {seq_len} tokens is longer than the training length R={cfg.train_len}; "
            f"valid lengths are 1..{cfg.train_len}"
        )
    family = cfg.family if family is None else check_family(family)
    if family != "linear" and cfg.per_sample:
        raise ValueError(f"per-sample draws need family='linear', got family={family!r}; use per_sample=False")
    draw = SCHEMES[scheme](cfg, make_generator(seed), batch_size)
    draw.family, draw.base_window = family, cfg.base_window
    if seq_len is not None:
        draw.position_ids = draw.position_ids[:, :seq_len].contiguous()
    return draw


def step_generator(seed: int, *key: int) -> torch.Generator:
    """A fresh CPU generator seeded by a hash of ``(seed, *key)`` — the same on every process and machine.

    SHA-256 of the decimal key, first 8 bytes, 63 bits: stable across Python versions (no ``hash()``).
    """
    text = ":".join(str(check_int("seed/step key", k, 0)) for k in (seed, *key))
    digest = hashlib.sha256(text.encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))


def sample_for_step(
    cfg: AugmentConfig,
    seed: int,
    step: int,
    batch_size: int = 1,
    scheme: str = "e2",
    seq_len: int | None = None,
    micro: int = 0,
) -> Draw:
    """The draw of optimizer step ``step``: a pure function of ``(seed, step)`` (Algorithm 1, Eq. 6–7).

    Every process of a data-parallel job, and every gradient-accumulation micro-batch of one step,
    computes the same ``(g, t)`` without communicating — "per iteration" holds for the whole job.
    With ``cfg.per_sample`` row ``i`` of micro-batch ``micro`` gets its own pair from
    ``(seed, step, micro, i)``; pass the *global* micro-batch (all processes' rows) and let each
    process take its slice, so the draws do not depend on how many processes share the batch.
    The scale and offset distributions are the paper's (:func:`sample`).
    """
    step = check_int("step", step, 0)
    if not cfg.per_sample:
        return sample(cfg, step_generator(seed, step), batch_size, scheme, seq_len)
    batch_size = check_int("batch_size", batch_size, 1)
    rows = [sample(cfg, step_generator(seed, step, micro, i), 1, scheme, seq_len) for i in range(batch_size)]
    draw = rows[0]
    draw.scale = torch.cat([d.scale for d in rows])  # (B,)
    draw.offset = torch.cat([d.offset for d in rows])  # (B,)
    draw.position_ids = torch.cat([d.position_ids for d in rows])  # (B, R)
    return draw
