"""The retrieval study's sizes (:class:`RetrievalProfile`; ``full``, the shipped run, and ``quick``, for tests), its
fine-tuning runs and the methods of its Fig. 6.

A profile sizes every phase: the retrieval base and its pre-training (``pre_*``, :mod:`~e2llm_lite.studies.retrieval.base`), the fine-tunes
(``ft_*``: the same tokens per step for every run; PI trains ``ft_batch / pi_scale`` rows of ``pi_scale·L``), the
exact-vs-steps curve (``curve_*``) and the Fig. 6 grid (``mults`` × ``depths``, ``n_per_cell`` prompts per cell).
Every value is checked when the profile is made; a bad one raises with the valid range.
"""
from __future__ import annotations

from dataclasses import dataclass

from e2llm_lite.validation import check_int

__all__ = ["RetrievalProfile", "RETRIEVAL_PROFILES", "METHODS", "GRID_STEMS", "RUNS"]

#: Fig. 6 panels: method -> (model: "base" or a fine-tuning run, RoPE family used at evaluation,
#: fixed g or None for g = length / L). PI serves its one trained scale, as the paper's PI models do.
METHODS = {
    "base": ("base", "linear", None),
    "base + YaRN": ("base", "yarn", None),  # the training-free control for E²-yarn: YaRN applied zero-shot
    "PI": ("pi", "linear", "pi_scale"),
    "E²-linear": ("e2-linear", "linear", None),
    "E²-yarn": ("e2-yarn", "yarn", None),
}
#: results/retrieval/grid_<stem>.json per method
GRID_STEMS = {"base": "base", "base + YaRN": "base-yarn", "PI": "pi", "E²-linear": "e2-linear", "E²-yarn": "e2-yarn"}
#: fine-tuning runs: name -> (scheme, family)
RUNS = {"pi": ("pi", "linear"), "e2-linear": ("e2", "linear"), "e2-yarn": ("e2", "yarn")}


@dataclass(frozen=True)
class RetrievalProfile:
    """Sizes of the retrieval study (defaults: the shipped run; ``RETRIEVAL_PROFILES["quick"]`` for tests)."""

    name: str = "full"
    # the retrieval base (pre-training at L, passkey rows in every batch)
    num_layers: int = 2
    hidden_size: int = 128
    num_heads: int = 4
    intermediate_size: int = 384
    base_window: int = 128  # L
    pre_steps: int = 3000  # measured probe: 8 of 16 rows, 1,200 steps -> only 27 % exact at L
    pre_batch: int = 16  # rows of L per step ...
    pre_passkey: int = 12  # ... of which passkey samples
    pre_lr: float = 2e-3  # peak, cosine to 10 %
    pre_warmup: int = 60
    train_chars: int = 4_000_000  # characters of stdlib train files encoded for the LM rows
    check_n: int = 100  # prompts for the base's in-window exact match
    pre_check_every: int = 250  # in-window exact match (pre_check_n prompts) during pre-training
    pre_check_n: int = 40
    # fine-tuning (every run the same tokens per step and steps)
    ft_steps: int = 1200
    ft_batch: int = 8  # rows of L per step (PI: ft_batch / pi_scale rows of pi_scale·L)
    ft_lr: float = 3e-4  # constant after warm-up
    ft_warmup: int = 20
    g_max: int = 16
    pi_scale: int = 4
    n_sink: int = 4
    pk_frac: float = 0.5  # share of fine-tuning rows that are passkey samples
    passkey_weight: float = 1.0  # weight of the answer cross-entropy added to the LM loss
    checkpoint_every: int = 100
    # exact match vs E² steps
    curve_every: int = 100
    curve_mults: tuple = (4, 8, 16)
    curve_n: int = 30  # prompts per length at each curve point (depths spread evenly over [0, 1])
    # Fig. 6
    mults: tuple = (1, 2, 4, 8, 16)
    depths: tuple = (0.0, 0.25, 0.5, 0.75, 1.0)
    n_per_cell: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        for k in ("num_layers", "hidden_size", "num_heads", "intermediate_size", "pre_steps", "pre_batch", "check_n",
                  "ft_steps", "ft_batch", "g_max", "pi_scale", "curve_every", "pre_check_every", "pre_check_n",
                  "curve_n", "n_per_cell",
                  "checkpoint_every", "train_chars"):
            check_int(k, getattr(self, k), 1)
        check_int("base_window", self.base_window, 32, note="a passkey prompt needs ~20 tokens plus filler")
        check_int("pre_warmup", self.pre_warmup, 0)
        check_int("ft_warmup", self.ft_warmup, 0)
        check_int("n_sink", self.n_sink, 0, self.base_window - 1, note=f"L = base_window = {self.base_window}")
        check_int("pre_passkey", self.pre_passkey, 1, self.pre_batch, note=f"pre_batch = {self.pre_batch}")
        check_int("pi_scale", self.pi_scale, 2, self.g_max, note=f"g_max = {self.g_max}")
        if self.ft_batch % self.pi_scale:
            raise ValueError(f"ft_batch must be a multiple of pi_scale = {self.pi_scale} (PI trains ft_batch / pi_scale "
                             f"rows of pi_scale·L: the same tokens per step), got ft_batch={self.ft_batch}")
        if not (isinstance(self.pk_frac, (int, float)) and 0.0 < self.pk_frac <= 1.0):
            raise ValueError(f"pk_frac must be a number in (0, 1], got pk_frac={self.pk_frac!r}")
        for k in ("pre_lr", "ft_lr"):
            v = getattr(self, k)
            if not (isinstance(v, (int, float)) and v > 0):
                raise ValueError(f"{k} must be a number > 0, got {k}={v!r}")
        for k in ("mults", "curve_mults"):
            vals = getattr(self, k)
            if not vals:
                raise ValueError(f"{k} must be a non-empty tuple of integers >= 1, got {k}={vals!r}")
            for m in vals:
                check_int(f"{k} item", m, 1, self.g_max, note=f"g = length / L must be <= g_max = {self.g_max}")
        if not self.depths or any(isinstance(d, bool) or not isinstance(d, (int, float)) or not 0 <= d <= 1
                                  for d in self.depths):
            raise ValueError(f"depths must be a non-empty tuple of numbers in [0, 1], got depths={self.depths!r}")

    @property
    def L(self) -> int:
        return self.base_window


RETRIEVAL_PROFILES = {
    "full": RetrievalProfile(),
    "quick": RetrievalProfile(
        "quick", hidden_size=32, num_heads=2, intermediate_size=64, base_window=64, pre_steps=4, pre_batch=4,
        pre_passkey=2, pre_warmup=1, train_chars=60_000, check_n=4, ft_steps=4, ft_batch=4, ft_warmup=1, g_max=4,
        pi_scale=2, checkpoint_every=2, curve_every=2, pre_check_every=2, pre_check_n=2, curve_mults=(2, 4), curve_n=2,
        mults=(1, 2, 4),
        depths=(0.0, 1.0), n_per_cell=2,
    ),
}
