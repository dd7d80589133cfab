r"""RoPE scale families: how a scale ``g`` moves each frequency pair — linear (PI), NTK-aware, YaRN.

E²-LLM (arXiv 2401.06951, §3.2) trains over scales ``g`` drawn from ``G = {1..G_max}`` (Eq. 6) and
applies each ``g`` as Position Interpolation (Eq. 3–4): *every* frequency :math:`\theta_j` of Eq. (1)
is divided by ``g``. That is one *family* of ways to turn a scale into frequencies. This module puts
three families behind one signature, like ``transformers``' ``ROPE_INIT_FUNCTIONS``
(``transformers/modeling_rope_utils.py``)::

    family(base: RopeBase, g: float) -> Scaled(inv_freq, attention_scaling)

Each family is one :class:`Family` in :data:`FAMILIES` — its frequencies, its export to stock
``transformers`` (``rope_parameters``, :func:`hf_rope_parameters`) and its display label — and
:func:`register_family` adds another; an unknown name is a ValueError everywhere (:func:`check_family`).

* ``linear`` — Position Interpolation (Chen et al., 2023; kaiokendev): :math:`\theta_j' = \theta_j / g`.
  The paper's method; identical to ``rope_type="linear"`` with ``factor = g``.
* ``ntk`` — NTK-aware scaling (bloc97, "NTK-Aware Scaled RoPE allows LLaMA models to have extended
  (8k+) context size without any fine-tuning", r/LocalLLaMA, 2023): raise the base instead,
  :math:`b' = b\,g^{d/(d-2)}`. The fastest pair (``j = 0``) keeps its frequency, the slowest
  (``j = d/2 − 1``) is divided by exactly ``g``, the pairs between by :math:`g^{2j/(d-2)}`.
  ``transformers`` has no *static* NTK type (its ``"dynamic"`` re-derives the base from the input
  length), so a static NTK model is stored as ``rope_type="default"`` with ``rope_theta = b'``.
* ``yarn`` — YaRN (Peng et al., arXiv 2309.00071, §3.2–3.4): "NTK-by-parts" interpolates only the
  pairs whose wavelength is long against the window ``L`` and keeps the fast ones, with a linear
  ramp between, and multiplies cos/sin by an attention factor :math:`\sqrt{1/t} = 0.1 \ln g + 1`
  (so attention logits are scaled by its square). Computed exactly as ``transformers`` computes
  ``rope_type="yarn"`` with ``factor = g`` and ``original_max_position_embeddings = L``
  (``beta_fast = 32``, ``beta_slow = 1``, truncated correction range).

``g = 1`` returns the base frequencies unchanged (bit for bit) and attention scaling 1 in every
family. The hook that installs a family on a live model is :func:`e2llm_lite.hf.rope_scale`.

Angles and frequencies are float32, as in ``transformers``; the expressions below follow its
``_compute_*_parameters`` functions operation for operation so that the tensors are bit-identical.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable, NamedTuple

import torch

from e2llm_lite.rope import inv_freq as rope_inv_freq
from e2llm_lite.validation import check_int

__all__ = [
    "RopeBase",
    "Scaled",
    "Family",
    "FAMILIES",
    "register_family",
    "check_family",
    "get_family",
    "scale_frequencies",
    "linear",
    "ntk",
    "yarn",
    "linear_export",
    "ntk_export",
    "yarn_export",
    "ntk_theta",
    "yarn_attention_factor",
    "yarn_ramp",
    "stretch",
    "hf_rope_parameters",
    "plot_stretch",
]


@dataclass(frozen=True)
class RopeBase:
    """What a family needs to know about a model's unscaled RoPE (Eq. 1)."""

    rope_theta: float = 10000.0  # b: the RoPE base of Eq. (1)
    rotary_dim: int = 128  # d: rotated coordinates per head (head_dim × partial_rotary_factor)
    base_window: int = 4096  # L: the pre-training window (YaRN's original_max_position_embeddings)
    inv_freq: torch.Tensor | None = None  # θ_j in use (None = b^{-2j/d}); `linear` divides these
    beta_fast: float = 32.0  # YaRN's β: pairs turning > β times in L keep their frequency
    beta_slow: float = 1.0  # YaRN's α: pairs turning < α times in L are fully interpolated

    def __post_init__(self) -> None:
        if not isinstance(self.rotary_dim, int) or isinstance(self.rotary_dim, bool) or self.rotary_dim < 4 \
                or self.rotary_dim % 2:
            raise ValueError(f"rotary_dim d must be an even integer >= 4, got rotary_dim={self.rotary_dim!r}")
        if not (isinstance(self.rope_theta, (int, float)) and math.isfinite(self.rope_theta) and self.rope_theta > 1):
            raise ValueError(f"rope_theta must be a finite number > 1, got rope_theta={self.rope_theta!r}")
        object.__setattr__(self, "base_window", check_int("base_window", self.base_window, 1, note="L"))
        if not self.beta_fast > self.beta_slow > 0:
            raise ValueError(f"need beta_fast > beta_slow > 0, got beta_fast={self.beta_fast!r}, "
                             f"beta_slow={self.beta_slow!r}")
        if self.inv_freq is not None and tuple(self.inv_freq.shape) != (self.rotary_dim // 2,):
            raise ValueError(f"inv_freq must have shape (d/2,) = ({self.rotary_dim // 2},), "
                             f"got {tuple(self.inv_freq.shape)}")

    def frequencies(self) -> torch.Tensor:
        r"""The base :math:`\theta_j` (float32, ``(d/2,)``): ``inv_freq`` if given, else :math:`b^{-2j/d}`."""
        if self.inv_freq is not None:
            return self.inv_freq.detach().to(torch.float32)
        return rope_inv_freq(self.rotary_dim, float(self.rope_theta))


class Scaled(NamedTuple):
    """A family's output: the frequencies to install and the factor on cos/sin (1 = none)."""

    inv_freq: torch.Tensor  # (d/2,) float32
    attention_scaling: float  # multiplies cos and sin (so q·k by its square)


def _check_g(g) -> float:
    if isinstance(g, bool) or not isinstance(g, (int, float)) or not math.isfinite(g) or g < 1:
        raise ValueError(f"scale g must be a finite number >= 1, got g={g!r}")
    return float(g)


# --- the three families ------------------------------------------------------------------------


def linear(base: RopeBase, g: float) -> Scaled:
    r"""Position Interpolation (paper Eq. 3–4): every pair slowed by ``g``.

    ``transformers``' ``_compute_linear_scaling_rope_parameters``: "applying scaling to the inverse
    frequencies is equivalent" to positions ``m/g``. Composes with a factor the model already has,
    because it divides the frequencies in use.
    """
    g = _check_g(g)
    f = base.frequencies()
    if g == 1.0:
        return Scaled(f.clone(), 1.0)
    # \theta_j' = \theta_j / g      (positions m/g, Eq. 4)
    return Scaled(f / g, 1.0)


def ntk_theta(rope_theta: float, g: float, rotary_dim: int) -> float:
    r"""NTK-aware base :math:`b' = b \cdot g^{d/(d-2)}` (bloc97, 2023). Python float, as ``transformers``."""
    # b' = b g^{d/(d-2)}:  then b'^{-(d-2)/d} = b^{-(d-2)/d} / g  (slowest pair interpolated by g)
    return rope_theta * g ** (rotary_dim / (rotary_dim - 2))


def ntk(base: RopeBase, g: float) -> Scaled:
    r"""NTK-aware scaling: :math:`\theta_j' = (b\,g^{d/(d-2)})^{-2j/d} = \theta_j\, g^{-2j/(d-2)}`.

    High frequencies (small ``j``) are kept — extrapolated, as in the base — and low ones interpolated,
    the slowest by exactly ``g``. No attention scaling. Equals ``transformers``' ``"dynamic"`` type
    (``_compute_dynamic_ntk_parameters``, credit /u/bloc97 and /u/emozilla) with ``factor = 1`` at
    ``seq_len = g·L``, and ``rope_type="default"`` with ``rope_theta =`` :func:`ntk_theta`.
    Needs the default frequencies :math:`b^{-2j/d}` (a model without another scaling).
    """
    g = _check_g(g)
    if g == 1.0:
        return Scaled(base.frequencies().clone(), 1.0)
    theta = ntk_theta(float(base.rope_theta), g, base.rotary_dim)
    # \theta_j' = b'^{-2j/d}, computed as transformers' default RoPE does
    return Scaled(rope_inv_freq(base.rotary_dim, theta), 1.0)


def yarn_attention_factor(g: float) -> float:
    r"""YaRN's :math:`\sqrt{1/t} = 0.1 \ln g + 1` (arXiv 2309.00071, Eq. 22), 1 for ``g ≤ 1``."""
    if g <= 1:
        return 1.0
    # \sqrt{1/t} = 0.1 \ln(s) + 1
    return 0.1 * math.log(g) + 1.0


def _correction_dim(num_rotations: float, dim: int, theta: float, window: int) -> float:
    r"""The pair index ``j`` whose wavelength :math:`2\pi b^{2j/d}` fits ``num_rotations`` times in ``L``."""
    # r = L / \lambda_j,  \lambda_j = 2\pi b^{2j/d}   =>   j = d \ln(L / (2\pi r)) / (2 \ln b)
    return (dim * math.log(window / (num_rotations * 2 * math.pi))) / (2 * math.log(theta))


def yarn_ramp(base: RopeBase) -> torch.Tensor:
    r"""YaRN's ramp :math:`\gamma` per pair (float32, ``(d/2,)``): 0 = keep (extrapolate), 1 = interpolate.

    arXiv 2309.00071 Eq. (18) in ``transformers``' form: pair ``j`` has :math:`r_j = L/\lambda_j`
    turns in the window; ``low``/``high`` are the (fractional) pair indices where :math:`r = \beta`
    (``beta_fast``) and :math:`r = \alpha` (``beta_slow``), widened to integers (``floor``/``ceil``,
    ``truncate=True``) and clipped to ``[0, d − 1]``; the ramp is linear between them.
    """
    d, theta, L = base.rotary_dim, float(base.rope_theta), base.base_window
    low = math.floor(_correction_dim(base.beta_fast, d, theta, L))
    high = math.ceil(_correction_dim(base.beta_slow, d, theta, L))
    low, high = max(low, 0), min(high, d - 1)
    if low == high:
        high += 0.001  # as transformers: prevent a division by zero
    # \gamma_j = clamp((j - low) / (high - low), 0, 1)
    return torch.clamp((torch.arange(d // 2, dtype=torch.float32) - low) / (high - low), 0, 1)


def yarn(base: RopeBase, g: float) -> Scaled:
    r"""YaRN = NTK-by-parts frequencies + attention temperature (arXiv 2309.00071, §3.2–3.4).

    .. math:: \theta_j' = (1 - \gamma_j)\,\theta_j + \gamma_j\,\theta_j / g, \qquad
              \text{cos/sin} \times (0.1 \ln g + 1)

    with :math:`\gamma` from :func:`yarn_ramp`. Bit-identical to ``transformers``'
    ``_compute_yarn_parameters`` for ``rope_type="yarn"``, ``factor = g``,
    ``original_max_position_embeddings = L``. Needs the default frequencies :math:`b^{-2j/d}`.
    """
    g = _check_g(g)
    if g == 1.0:
        return Scaled(base.frequencies().clone(), 1.0)
    d, theta = base.rotary_dim, float(base.rope_theta)
    pos_freqs = theta ** (torch.arange(0, d, 2).to(dtype=torch.float) / d)  # b^{2j/d} = 1/\theta_j
    extrapolation = 1.0 / pos_freqs  # \theta_j (kept)
    interpolation = 1.0 / (g * pos_freqs)  # \theta_j / g (PI)
    keep = 1 - yarn_ramp(base)  # 1 - \gamma_j
    # \theta_j' = \theta_j/g \cdot \gamma_j + \theta_j (1 - \gamma_j)
    inv = interpolation * (1 - keep) + extrapolation * keep
    return Scaled(inv, yarn_attention_factor(g))


# --- what stock transformers builds the same frequencies from ------------------------------------


def linear_export(base: RopeBase, g: float) -> dict:
    """``{"rope_type": "linear", "factor": g}`` (also at g = 1: a linear factor of 1 is the identity)."""
    return {"rope_type": "linear", "factor": _check_g(g)}


def ntk_export(base: RopeBase, g: float) -> dict:
    """``{"rope_type": "default", "rope_theta": b·g^{d/(d−2)}}``: transformers has no static NTK type."""
    g = _check_g(g)
    if g == 1.0:
        return {"rope_type": "default"}
    return {"rope_type": "default", "rope_theta": ntk_theta(float(base.rope_theta), g, base.rotary_dim)}


def yarn_export(base: RopeBase, g: float) -> dict:
    """``{"rope_type": "yarn", "factor": g, "original_max_position_embeddings": L, "beta_fast", "beta_slow"}``."""
    g = _check_g(g)
    if g == 1.0:
        return {"rope_type": "default"}
    return {"rope_type": "yarn", "factor": g, "original_max_position_embeddings": base.base_window,
            "beta_fast": float(base.beta_fast), "beta_slow": float(base.beta_slow)}


# --- the registry --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Family:
    """One RoPE scale family: an entry of :data:`FAMILIES`.

    * ``name`` — its key (``--family`` value, ``AugmentConfig.family``); ``label`` — its name in tables and
      figures (the one place display labels live: ``linear`` is shown as "PI");
    * ``frequencies`` — ``(base: RopeBase, g) -> Scaled``: the frequencies and cos/sin factor at scale g
      (``g = 1`` must return the base unchanged);
    * ``export`` — ``(base: RopeBase, g) -> dict``: the ``rope_parameters`` entries with which stock
      ``transformers`` builds the same RoPE (:func:`hf_rope_parameters`, ``hf.save_for_scale``);
    * ``description`` (one line), ``citation``;
    * ``needs_default_rope`` — computed from the default frequencies :math:`b^{-2j/d}`, so the model must have
      ``rope_type="default"`` (``ntk``, ``yarn``); False for a family that scales the frequencies in use
      (``linear``, which composes with a factor the model already has).

    Callable like its frequency function: ``FAMILIES["yarn"](base, g)``.
    """

    name: str
    label: str
    frequencies: Callable[[RopeBase, float], Scaled]
    export: Callable[[RopeBase, float], dict]
    description: str
    citation: str = ""
    needs_default_rope: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", self.name):
            raise ValueError(f"Family.name must be a non-empty lower-case name of letters, digits, '.', '_', '-', "
                             f"got {self.name!r}")
        for attr in ("label", "description"):
            v = getattr(self, attr)
            if not isinstance(v, str) or not v.strip() or "\n" in v:
                raise ValueError(f"Family {self.name!r}: {attr} must be one non-empty line of text, got {v!r}")
        if not isinstance(self.citation, str):
            raise ValueError(f"Family {self.name!r}: citation must be text, got {self.citation!r}")
        for attr in ("frequencies", "export"):
            if not callable(getattr(self, attr)):
                raise TypeError(f"Family {self.name!r}: {attr} must be callable, got {type(getattr(self, attr)).__name__}")
        if not isinstance(self.needs_default_rope, bool):
            raise TypeError(f"Family {self.name!r}: needs_default_rope must be True or False")

    def __call__(self, base: RopeBase, g: float) -> Scaled:
        return self.frequencies(base, g)


#: name -> :class:`Family`; every ``frequencies`` has the signature ``(base: RopeBase, g: float) -> Scaled``.
FAMILIES: dict[str, Family] = {}


def register_family(family: Family) -> Family:
    """Add ``family`` to :data:`FAMILIES` under ``family.name``; a name already taken is a ValueError."""
    if not isinstance(family, Family):
        raise TypeError(f"register_family takes a Family(name, label, frequencies, export, description), "
                        f"got {type(family).__name__}")
    if family.name in FAMILIES:
        raise ValueError(f"RoPE scale family {family.name!r} is already registered; choose another name")
    FAMILIES[family.name] = family
    return family


def check_family(family: str) -> str:
    """``family`` if registered, else a ValueError listing the valid names."""
    if not isinstance(family, str) or family not in FAMILIES:
        raise ValueError(f"unknown RoPE scale family {family!r}; valid families: {', '.join(FAMILIES)}")
    return family


def get_family(family: str) -> Family:
    """The registered :class:`Family` ``family``; an unknown name is a ValueError listing the valid ones."""
    return FAMILIES[check_family(family)]


for _f in (
    Family("linear", "PI", linear, linear_export, "Position Interpolation: every frequency divided by g",
           "Chen et al. 2023, arXiv 2306.15595; kaiokendev 2023; E²-LLM Eq. 3-4", needs_default_rope=False),
    Family("ntk", "NTK", ntk, ntk_export, "NTK-aware: the RoPE base raised to b·g^(d/(d-2))",
           "bloc97, r/LocalLLaMA, 2023"),
    Family("yarn", "YaRN", yarn, yarn_export, "YaRN: NTK-by-parts frequencies and an attention temperature",
           "Peng et al. 2023, arXiv 2309.00071"),
):
    register_family(_f)
del _f


def scale_frequencies(base: RopeBase, g: float, family: str = "linear") -> Scaled:
    """Apply family ``family`` at scale ``g`` to ``base`` (see :data:`FAMILIES`)."""
    return get_family(family).frequencies(base, g)


def stretch(base: RopeBase, g: float, family: str = "linear") -> torch.Tensor:
    r"""Per pair, how much slower it turns under the family: :math:`\theta_j / \theta_j'` (1 = kept, g = PI)."""
    return base.frequencies() / scale_frequencies(base, g, family).inv_freq


def hf_rope_parameters(base: RopeBase, g: float, family: str = "linear") -> dict:
    """The ``rope_parameters`` entries with which stock ``transformers`` builds the same frequencies: the
    family's own :attr:`Family.export` (an unknown family is a ValueError naming the valid ones).

    ``linear`` → ``{"rope_type": "linear", "factor": g}``; ``ntk`` → ``{"rope_type": "default",
    "rope_theta": b·g^{d/(d−2)}}`` (no static NTK type exists); ``yarn`` → ``{"rope_type": "yarn",
    "factor": g, "original_max_position_embeddings": L, "beta_fast", "beta_slow"}``. ``g = 1`` gives
    ``{"rope_type": "default"}`` for ``ntk`` and ``yarn``. Merge into the model's own parameters
    (``rope_theta``, ``partial_rotary_factor``).
    """
    g = _check_g(g)
    return dict(get_family(family).export(base, g))


def plot_stretch(base: RopeBase, g: float, families=None, ax=None):
    r"""How each family moves each pair at scale ``g``: :func:`stretch` against the pair's wavelength.

    x: wavelength :math:`2\pi/\theta_j` in tokens (log), with the window ``L`` marked; y: how many times
    slower the pair turns (1 = kept, ``g`` = interpolated as PI). Returns ``(fig, ax)``.
    """
    import matplotlib.pyplot as plt  # lazily: the families themselves need only torch

    fig, ax = (plt.subplots(figsize=(8.0, 3.4)) if ax is None else (ax.figure, ax))  # pictures.FIGSIZE
    lam = (2 * math.pi / base.frequencies()).numpy()
    for fam in families or FAMILIES:
        ax.plot(lam, stretch(base, g, fam).numpy(), marker="o", ms=3, label=fam)
    ax.axvline(base.base_window, color="0.5", ls="--", lw=1)
    ax.text(base.base_window, 1, " L", color="0.4", va="bottom")
    ax.set_xscale("log")
    ax.set_yscale("log", base=2)
    ax.set_xlabel("wavelength of the pair (tokens)")
    ax.set_ylabel("θ / θ′  (1 = kept, g = PI)")
    ax.set_title(f"d = {base.rotary_dim}, b = {base.rope_theta:g}, L = {base.base_window}, g = {g:g}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig, ax
