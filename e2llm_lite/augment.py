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

**Schemes.** A training scheme is one :class:`Scheme` in :data:`SCHEMES` (``none``, ``pi``, ``e2`` and the
Table 4 ablations ``e2-no-offset``, ``e2-fixed-scale``): a name, a draw function ``(cfg, generator,
batch_size) -> Draw`` that builds the position ids and the scale ``g`` of every row itself, the single g it
trains at (:meth:`Scheme.train_scale`; None when g is drawn per step), whether it trains on sequences as
long as the context it serves (PI) or on short windows, a one-line description and its citation. A
:class:`Draw` holds what every consumer needs — ``position_ids``, ``scale`` (g per row) — and the scheme's own
values under neutral names: ``shift`` (what was added to the ids after the sinks; E²'s offset ``t``) and
``params``. The training loop, the ``Trainer`` callback and the studies read only those, so a new scheme
is one :func:`register_scheme` call; :attr:`AugmentConfig.target_len` is the context length a scheme may
aim its positions at.

**One module, on purpose** (about 560 lines, a third of them docstrings): the configuration, the :class:`Draw`,
the schemes and the samplers are Eq. (5)–(7) and Algorithm 1 read together, and each needs the others (a scheme
builds a ``Draw`` from an ``AugmentConfig``; ``sample`` checks what a scheme returns).

Example (a registered scheme, then trained like any other)::

    def every_other(cfg, gen, batch_size):        # ids 0, 2, 4, ... at g = 2: inside [0, L·2)
        pos = (2 * torch.arange(cfg.train_len)).expand(batch_size, -1).clone()
        return Draw(scale=torch.full((batch_size,), 2), position_ids=pos)

    register_scheme(Scheme("every-other", every_other, "even position ids at g = 2",
                           train_scale=lambda cfg: 2))
    sample(AugmentConfig(256, 256, 16), 0, scheme="every-other")
"""
from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import torch
from e2llm_lite.scaling import check_family
from e2llm_lite.validation import ArgumentTypeError, check_int, describe

__all__ = [
    "AugmentConfig",
    "Draw",
    "Scheme",
    "SCHEMES",
    "register_scheme",
    "get_scheme",
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
    target_len: int | None = None  # context length the fine-tune serves (>= R); None = L*G_max (E²'s reach); pi: g = ceil(target/L)

    def __post_init__(self) -> None:
        for name in ("base_window", "train_len", "g_max"):
            v = getattr(self, name)
            object.__setattr__(self, name, check_int(name, v, 1))
        if self.target_len is not None:
            object.__setattr__(self, "target_len", check_int(
                "target_len", self.target_len, self.train_len, note=f"a context of at least R = train_len = {self.train_len} tokens"))
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
    def target(self) -> int:
        """The context length the fine-tune serves: :attr:`target_len`, or ``L·G_max`` (the longest window E² trains)."""
        return self.target_len if self.target_len is not None else self.base_window * self.g_max

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


@dataclass(init=False)
class Draw:
    """One training step's positions, as a scheme drew them for a batch of B rows of R tokens.

    What every consumer reads: ``position_ids`` — the integer ids the model is fed, ``(B, R)`` — and ``scale`` —
    the g applied to them, one per row (``(B,)``; rotary positions are ``position_ids / g``). What the
    scheme drew besides, under neutral names: ``shift`` — per row, what the scheme added to the ids after the
    ``n_sink`` sinks (for ``e2`` and its ablations: the offset ``t`` of Eq. 7; 0 for ``none`` and ``pi``; a
    scheme whose ids are not one shifted window leaves it 0) — and ``params``, any other per-row values of the
    scheme (name -> tensor with one row per sequence), kept with their rows when a batch is split or joined.
    ``offset`` is an alias of ``shift`` (E²'s name, accepted by the constructor too).
    """

    position_ids: torch.Tensor  # (B, R) int64: the ids fed to the model (E²: m for sinks, m + t after them)
    scale: torch.Tensor  # (B,) int64: g per row (all equal when drawn per iteration)
    shift: torch.Tensor  # (B,) int64: added to the ids after the sinks (E²: t of Eq. 7); zeros when not given
    scheme: str = ""  # the SCHEMES entry that drew it (set by sample)
    params: dict = field(default_factory=dict)  # other per-row values of the scheme: name -> (B, ...) tensor
    extra: dict = field(default_factory=dict)  # for the caller (train.loop puts this process's rows here)
    family: str = "linear"  # RoPE scale family that applies g (e2llm_lite.scaling.FAMILIES)
    base_window: int | None = None  # L of the draw's config (YaRN's original window); None = the model's

    def __init__(self, scale: torch.Tensor, shift: torch.Tensor | None = None, position_ids: torch.Tensor | None = None,
                 scheme: str = "", extra: dict | None = None, family: str = "linear", base_window: int | None = None,
                 *, params: Mapping | None = None, offset: torch.Tensor | None = None) -> None:
        if offset is not None:
            if shift is not None:
                raise ValueError("Draw got both shift and offset (offset is E²'s name for shift); pass one")
            shift = offset
        if position_ids is None:
            raise ValueError("Draw needs position_ids: the (B, R) integer ids the model is fed")
        if shift is None:
            shift = torch.zeros(scale.shape if isinstance(scale, torch.Tensor) else (1,), dtype=torch.int64)
        self.position_ids, self.scale, self.shift = position_ids, scale, shift
        self.scheme, self.family, self.base_window = scheme, family, base_window
        self.params = dict(params or {})
        self.extra = {} if extra is None else extra
        self.check()

    @property
    def offset(self) -> torch.Tensor:
        """E²'s name for :attr:`shift`: the offset ``t`` of Eq. (7), per row."""
        return self.shift

    @offset.setter
    def offset(self, value: torch.Tensor) -> None:
        self.shift = value

    def check(self) -> "Draw":
        """Validate the draw — also one built by hand — and return it: ``scale`` holds integers g ≥ 1
        (G = {1, …, G_max}, Eq. 6), ``shift`` integers ≥ 0 (E²'s t, Eq. 7), one per sequence (or one for all),
        ``position_ids`` is ``(B, R)`` with R ≥ 1, every ``params`` value a tensor with one row per sequence.
        Integer-valued float tensors (``2.``) are accepted and stored as int64; 2.5, 0, −1, nan are rejected with
        the row and value (a float g would otherwise be truncated by :attr:`uniform_scale`, and g < 1 or nan gives
        positions past L or non-finite logits)."""
        for name in ("scale", "shift", "position_ids"):
            v = getattr(self, name)
            if not isinstance(v, torch.Tensor):
                raise ArgumentTypeError(f"Draw.{name} must be a torch.Tensor, got {describe(v)}")
            if v.dtype == torch.bool or v.is_complex():
                raise ArgumentTypeError(f"Draw.{name} must be an integer tensor, got dtype {v.dtype}")
            if v.is_floating_point():
                bad = ~torch.isfinite(v) | (v != v.round())
                if bool(bad.any()):
                    what = {"scale": "integers g >= 1 (G = {1..G_max}, Eq. 6; a float g would be truncated)",
                            "shift": "integers >= 0 (E²: t >= 0, Eq. 7)"}.get(name, "integer positions")
                    raise ValueError(f"Draw.{name} must hold {what}, got {v[bad].flatten()[0].item()!r} "
                                     f"at index {tuple(i.item() for i in bad.nonzero()[0])}")
                setattr(self, name, v.to(torch.int64))
        s, t, pos = self.scale, self.shift, self.position_ids
        if s.dim() != 1 or s.numel() == 0 or t.shape != s.shape:
            raise ValueError(f"Draw.scale and Draw.shift must both have shape (B,), got {tuple(s.shape)} and {tuple(t.shape)}")
        if pos.dim() != 2 or pos.shape[1] == 0 or s.numel() not in (1, pos.shape[0]):
            raise ValueError(f"Draw.position_ids must have shape (B, R) with R >= 1 and B = {s.numel()} rows, "
                             f"got {tuple(pos.shape)}")
        if bool((s < 1).any()):
            i = int((s < 1).nonzero()[0])
            raise ValueError(f"Draw.scale must hold integers g >= 1 (G = {{1..G_max}}, Eq. 6), got g={s[i].item()} in row {i}")
        if bool((t < 0).any()):
            i = int((t < 0).nonzero()[0])
            raise ValueError(f"Draw.shift must hold integers >= 0 (E²: t >= 0, Eq. 7), got t={t[i].item()} in row {i}")
        for k, v in self.params.items():
            if not isinstance(v, torch.Tensor) or v.dim() == 0 or v.shape[0] != s.numel():
                raise ValueError(f"Draw.params[{k!r}] must be a tensor with one row per sequence ({s.numel()}), "
                                 f"got {describe(v) if not isinstance(v, torch.Tensor) else tuple(v.shape)}")
        return self

    @property
    def scaled_positions(self) -> torch.Tensor:
        """(B, R) float32 rotary positions ``position_ids / g`` (E²: ``(m + t)/g``, Eq. 5)."""
        return self.position_ids.to(torch.float32) / self.scale.to(torch.float32)[:, None]

    @property
    def uniform_scale(self) -> int | None:
        """The single g of the batch, or None when sequences have different g."""
        g = self.scale.unique()
        return int(g.item()) if g.numel() == 1 else None

    def rows(self, index) -> "Draw":
        """A draw of the rows ``index`` (a slice or index tensor) of this one: ids, g, shift and params together."""
        return Draw(scale=self.scale[index], shift=self.shift[index], position_ids=self.position_ids[index],
                    scheme=self.scheme, extra=dict(self.extra), family=self.family, base_window=self.base_window,
                    params={k: v[index] for k, v in self.params.items()})

    @staticmethod
    def cat(draws: Sequence["Draw"]) -> "Draw":
        """Join draws row-wise (one per row of a per-sample batch): ids, g, shift and params."""
        first = draws[0]
        return Draw(scale=torch.cat([d.scale for d in draws]), shift=torch.cat([d.shift for d in draws]),
                    position_ids=torch.cat([d.position_ids for d in draws]), scheme=first.scheme,
                    extra=dict(first.extra), family=first.family, base_window=first.base_window,
                    params={k: torch.cat([d.params[k] for d in draws]) for k in first.params})


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


def _shifted_window(cfg: AugmentConfig, scales: torch.Tensor, shifts: torch.Tensor, batch_size: int) -> Draw:
    """The draw of a scheme whose rows are one window of R ids shifted after the sinks (Eq. 7): ``none``, ``pi``
    and E². Per iteration (``cfg.per_sample`` False) the first (g, t) serves the whole batch."""
    if not cfg.per_sample:  # one (g, t) for the whole iteration
        scales = scales[:1].expand(batch_size).clone()
        shifts = shifts[:1].expand(batch_size).clone()
    pos = torch.stack([e2_position_ids(cfg.train_len, int(t), cfg.n_sink) for t in shifts])
    return Draw(scale=scales, shift=shifts, position_ids=pos)


def _n_draws(cfg: AugmentConfig, batch_size: int) -> int:
    batch_size = check_int("batch_size", batch_size, 1)
    return batch_size if cfg.per_sample else 1


def _fixed(cfg: AugmentConfig, default: int) -> int:
    g = cfg.fixed_scale if cfg.fixed_scale is not None else default
    max_offset(cfg.base_window, g, cfg.train_len)  # validates R <= L*g
    return g


def _pi_scale(cfg: AugmentConfig) -> int:
    """PI's one g: ``fixed_scale``, else ``⌈target_len / L⌉`` when a target is set, else ``⌈R / L⌉``."""
    default = -(-cfg.target_len // cfg.base_window) if cfg.target_len is not None else cfg.min_scale
    return _fixed(cfg, max(default, cfg.min_scale))


def _fixed_scale_ablation(cfg: AugmentConfig) -> int:
    """The "fixed scale" ablation's g: ``fixed_scale``, else the paper's 4 (Table 4)."""
    return _fixed(cfg, 4)


def draw_none(cfg: AugmentConfig, gen: torch.Generator, batch_size: int) -> Draw:
    """No scaling, no shift: plain RoPE (g = 1, ids 0..R−1). Needs R ≤ L."""
    n = _n_draws(cfg, batch_size)
    max_offset(cfg.base_window, 1, cfg.train_len)
    one = torch.ones(n, dtype=torch.int64)
    return _shifted_window(cfg, one, torch.zeros(n, dtype=torch.int64), batch_size)


def draw_pi(cfg: AugmentConfig, gen: torch.Generator, batch_size: int) -> Draw:
    """Position Interpolation (Eq. 3–4): one g (:func:`_pi_scale`), ids 0..R−1."""
    n = _n_draws(cfg, batch_size)
    g = _pi_scale(cfg)
    return _shifted_window(cfg, torch.full((n,), g, dtype=torch.int64), torch.zeros(n, dtype=torch.int64), batch_size)


def draw_e2(cfg: AugmentConfig, gen: torch.Generator, batch_size: int) -> Draw:
    """E² (Algorithm 1): g from P (Eq. 6), shift t from Q (Eq. 7) unless ``cfg.offsets`` is False."""
    n = _n_draws(cfg, batch_size)
    g = _draw_scales(cfg, gen, n)
    t = _draw_offsets(cfg, g, gen) if cfg.offsets else torch.zeros(n, dtype=torch.int64)
    return _shifted_window(cfg, g, t, batch_size)


def draw_e2_no_offset(cfg: AugmentConfig, gen: torch.Generator, batch_size: int) -> Draw:
    """Table 4 ablation "E²-LLM (no offset)": scale augmentation only, t = 0."""
    n = _n_draws(cfg, batch_size)
    g = _draw_scales(cfg, gen, n)
    return _shifted_window(cfg, g, torch.zeros(n, dtype=torch.int64), batch_size)


def draw_e2_fixed_scale(cfg: AugmentConfig, gen: torch.Generator, batch_size: int) -> Draw:
    """Table 4 ablation "E²-LLM (fixed scale)": g = ``fixed_scale`` (paper: 4), offsets drawn."""
    n = _n_draws(cfg, batch_size)
    g = torch.full((n,), _fixed_scale_ablation(cfg), dtype=torch.int64)
    t = _draw_offsets(cfg, g, gen)
    return _shifted_window(cfg, g, t, batch_size)


DrawFn = Callable[[AugmentConfig, torch.Generator, int], Draw]
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")


@dataclass(frozen=True)
class Scheme:
    """One training scheme: an entry of :data:`SCHEMES`.

    * ``name`` — its key (lower case, digits, ``.``, ``_``, ``-``: used in file and run names);
    * ``draw`` — ``(cfg, generator, batch_size) -> Draw`` with ``batch_size`` rows of ``cfg.train_len`` ids: it
      builds the position ids and the g of every row itself, from ``cfg`` (its own knobs: ``fixed_scale``,
      ``n_sink``, ``offsets``, ``target_len``, …) and ``generator`` (its only source of randomness, so that
      :func:`sample_for_step` is a pure function of ``(seed, step)``);
    * ``description`` — one line; ``citation`` — where it comes from;
    * ``train_scale`` — ``cfg -> int | None``: the one g it trains at under ``cfg`` (``pi``: its fixed g;
      ``none``: 1), None when g is drawn per step (``e2``: from P over G, Eq. 6);
    * ``uses_fixed_scale`` — it trains at the g given as ``cfg.fixed_scale`` (``pi``, ``e2-fixed-scale``);
    * ``long_sequences`` — it trains on sequences as long as the context it serves (``pi``: rows of g·L
      tokens), not on windows of R ≤ L tokens that reach further through their positions (E²).

    Callable like its draw function: ``SCHEMES["e2"](cfg, gen, batch_size)``.
    """

    name: str
    draw: DrawFn
    description: str
    citation: str = ""
    train_scale: Callable[[AugmentConfig], int | None] = field(default=lambda cfg: None, repr=False)
    uses_fixed_scale: bool = False
    long_sequences: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise ValueError(f"Scheme.name must be a non-empty lower-case name of letters, digits, '.', '_', '-', "
                             f"got {self.name!r}")
        for attr in ("draw", "train_scale"):
            if not callable(getattr(self, attr)):
                raise ArgumentTypeError(f"Scheme {self.name!r}: {attr} must be callable, got {describe(getattr(self, attr))}")
        for attr in ("description", "citation"):
            v = getattr(self, attr)
            if not isinstance(v, str) or "\n" in v:
                raise ValueError(f"Scheme {self.name!r}: {attr} must be one line of text, got {v!r}")
        if not self.description.strip():
            raise ValueError(f"Scheme {self.name!r}: description must say in one line what the scheme does")
        for attr in ("uses_fixed_scale", "long_sequences"):
            if not isinstance(getattr(self, attr), bool):
                raise ArgumentTypeError(f"Scheme {self.name!r}: {attr} must be True or False, got {describe(getattr(self, attr))}")

    def __call__(self, cfg: AugmentConfig, generator: torch.Generator, batch_size: int) -> Draw:
        return self.draw(cfg, generator, batch_size)

    def sequence_scale(self, g: int) -> int:
        """Training rows of a run that serves ``g·L`` are this many base windows long: ``g`` for a scheme with
        :attr:`long_sequences` (PI pays g× longer rows), 1 for one that trains on windows of L tokens."""
        return check_int("g", g, 1) if self.long_sequences else 1


#: name -> :class:`Scheme`; every draw function has the signature ``(cfg, generator, batch_size) -> Draw``.
SCHEMES: dict[str, Scheme] = {}


def register_scheme(scheme: Scheme, *legacy) -> Scheme:
    """Add ``scheme`` to :data:`SCHEMES` under ``scheme.name``; a name already taken is a ValueError."""
    if legacy or not isinstance(scheme, Scheme):
        got = f"({describe(scheme)}, {', '.join(describe(x) for x in legacy)})" if legacy else describe(scheme)
        raise ArgumentTypeError(f"register_scheme takes a Scheme(name, draw, description, ...), got {got}; "
                                f"wrap a draw function: register_scheme(Scheme(name, fn, 'what it does'))")
    if scheme.name in SCHEMES:
        raise ValueError(f"scheme {scheme.name!r} is already registered; choose another name")
    SCHEMES[scheme.name] = scheme
    return scheme


def get_scheme(name: str) -> Scheme:
    """The registered scheme ``name``; an unknown name is a ValueError listing the valid ones."""
    if not isinstance(name, str) or name not in SCHEMES:
        raise ValueError(f"unknown scheme {name!r}; valid schemes: {', '.join(sorted(SCHEMES))}")
    return SCHEMES[name]


_E2 = "E²-LLM, arXiv 2401.06951"
for _s in (
    Scheme("none", draw_none, "plain RoPE: g = 1, ids 0..R-1 (continued training at L)", f"{_E2}, Table 3 baseline",
           train_scale=lambda cfg: 1),
    Scheme("pi", draw_pi, "Position Interpolation: one g, ids 0..R-1 on rows of g·L tokens",
           "Chen et al. 2023, arXiv 2306.15595; E²-LLM Eq. 3-4", train_scale=_pi_scale, uses_fixed_scale=True,
           long_sequences=True),
    Scheme("e2", draw_e2, "E²: g drawn from P over {1..G_max}, offset t from {0..L·g-R} after the sinks",
           f"{_E2}, Algorithm 1, Eq. 5-7"),
    Scheme("e2-no-offset", draw_e2_no_offset, "E² ablation: g drawn, no offset (t = 0)", f"{_E2}, Table 4"),
    Scheme("e2-fixed-scale", draw_e2_fixed_scale, "E² ablation: one g (fixed_scale, default 4), offsets drawn",
           f"{_E2}, Table 4", train_scale=_fixed_scale_ablation, uses_fixed_scale=True),
):
    register_scheme(_s)
del _s


def sample(
    cfg: AugmentConfig,
    seed: int | torch.Generator | None = None,
    batch_size: int = 1,
    scheme: str = "e2",
    seq_len: int | None = None,
    family: str | None = None,
) -> Draw:
    """One iteration's draw of ``scheme`` (default ``"e2"``: g and t of Eq. 6–7) and its position ids.

    ``seed`` is an int or a ``torch.Generator`` (pass the same generator on every iteration for a
    reproducible stream). ``seq_len`` — the length of the batch about to be trained on — is checked
    against R: a longer sequence than R would push positions past the base window. ``family``
    (default ``cfg.family``) only labels the draw with the scale family that will apply it — the
    draw itself is the same for every family.
    """
    spec = get_scheme(scheme)
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
    draw = spec.draw(cfg, make_generator(seed), batch_size)
    if not isinstance(draw, Draw):
        raise ArgumentTypeError(f"scheme {scheme!r} returned {describe(draw)}, not a Draw")
    want = (check_int("batch_size", batch_size, 1), cfg.train_len)
    if tuple(draw.position_ids.shape) != want:
        raise ValueError(f"scheme {scheme!r} returned position ids of shape {tuple(draw.position_ids.shape)}; "
                         f"a draw has batch_size x train_len = {want} ids")
    if draw.scale.numel() == 1 and want[0] > 1:  # one g (and shift) given for the whole batch: one per row
        draw.scale, draw.shift = draw.scale.expand(want[0]).clone(), draw.shift.expand(want[0]).clone()
        draw.check()
    draw.scheme, draw.family, draw.base_window = scheme, family, cfg.base_window
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
    computes the same draw without communicating — "per iteration" holds for the whole job.
    With ``cfg.per_sample`` row ``i`` of micro-batch ``micro`` gets its own draw from
    ``(seed, step, micro, i)``; pass the *global* micro-batch (all processes' rows) and let each
    process take its slice, so the draws do not depend on how many processes share the batch.
    The scale and offset distributions are the scheme's own (:func:`sample`).
    """
    step = check_int("step", step, 0)
    if not cfg.per_sample:
        return sample(cfg, step_generator(seed, step), batch_size, scheme, seq_len)
    batch_size = check_int("batch_size", batch_size, 1)
    return Draw.cat([sample(cfg, step_generator(seed, step, micro, i), 1, scheme, seq_len) for i in range(batch_size)])
