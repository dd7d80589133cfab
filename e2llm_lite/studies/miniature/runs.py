r"""What the miniature runs: its profiles (sizes) and its fine-tuning runs, as data.

A run is one :class:`RunSpec` — a name, a training scheme (:data:`e2llm_lite.augment.SCHEMES`), a scale
family (:data:`e2llm_lite.scaling.FAMILIES`) and the scheme's knobs — and :func:`runs` lists a profile's runs
in the order they are fine-tuned. The runner (:mod:`e2llm_lite.studies.miniature.reproduce`) derives
everything else from the spec and the scheme: a scheme that trains on long sequences (PI, rows of g·L
tokens) gets ``ft_batch / g`` rows per step so that every run sees the same tokens per step. Every run gets a
row in ``table_runs`` (perplexity vs length, with its ``eval_g`` rule); the paper's tables name the runs they
compare. Adding a scheme to the study is one more entry::

    specs = [*runs(PROFILES["quick"]), RunSpec("every-other", "every-other")]
    Reproduction(PROFILES["quick"], out, work, runs=specs).run_all()
"""
from __future__ import annotations

from dataclasses import dataclass

from e2llm_lite.augment import get_scheme
from e2llm_lite.scaling import get_family
from e2llm_lite.validation import check_int

__all__ = ["Profile", "PROFILES", "RunSpec", "runs"]


@dataclass
class Profile:
    """Sizes of one reproduction (``quick`` for tests, ``full`` for the shipped numbers)."""

    name: str  # "quick" | "full"
    ft_steps: int = 150  # fine-tuning optimizer steps per run (same for every scheme)
    ft_batch: int = 8  # sequences of R = L tokens per step (PI: ft_batch / g sequences of g·L)
    lr: float = 2e-4  # fine-tuning learning rate (constant after warm-up; ~ the end of pre-training's)
    warmup: int = 10  # warm-up steps
    g_max: int = 16  # G_max: E² draws g from {1..16} -> up to 16·L
    pi_scale: int = 4  # PI's fixed g (trained on 4·L-token sequences)
    fixed_scale: int = 4  # "e2-fixed-scale" ablation g (paper: 4)
    sinks: tuple = (0, 2, 4, 6)  # Table 5 (4 is the main E² run)
    pk_frac: float = 0.0  # share of fine-tuning rows that are passkey samples (task mix; see REPORT levers)
    passkey_weight: float = 1.0  # extra CE weight on passkey answers
    eval_mults: tuple = (1, 2, 4, 8, 16)  # evaluation lengths in units of L
    eval_docs: int = 8  # held-out segments of max(eval_mults)·L tokens
    table3_g: tuple = (4, 8, 16)  # fixed-g rows "E²-xK" (window g·L)
    unseen_g: tuple = (16, 24, 32)  # Fig. 5 scales (G_max and beyond)
    fig5_mults: tuple = (1, 4, 16, 24, 32)  # Fig. 5 lengths in units of L (32·L = 2·L·G_max)
    fig5_docs: int = 4  # Fig. 5 segments of max(fig5_mults)·L tokens
    fig4_steps: tuple = (0, 10, 25, 50, 100, 150, 300, 450)  # steps at which E² is evaluated (Fig. 4)
    long_mult: int = 3  # lever: the e2 run continued to long_mult × ft_steps ("e2-x3")
    fig4_mults: tuple = (1, 8)  # Fig. 4 lengths in units of L
    fig4_docs: int = 4  # segments used for Fig. 4
    pk_mults: tuple = (1, 2, 4, 8, 16)  # Fig. 6 lengths in units of L
    pk_depths: tuple = (0.0, 0.25, 0.5, 0.75, 1.0)  # Fig. 6 depths
    pk_per_cell: int = 4  # samples per (depth, length) cell
    train_chars: int | None = None  # cap on train text encoded (None = whole train split)
    harmonic_run: bool = True  # lever: an extra E² run with P(g) ∝ 1/g (denser draw of small g)
    families: tuple = ("ntk", "yarn")  # E² runs over these scale families beside linear (e2llm_lite.scaling)
    family_g: int = 8  # fixed-g row per family in table3_families (the paper's E²-32K: g = 8)


PROFILES = {
    "full": Profile("full"),
    "quick": Profile(
        "quick", ft_steps=2, ft_batch=4, warmup=1, eval_mults=(1, 2, 4), eval_docs=1, table3_g=(4,),
        unseen_g=(16, 24), fig5_mults=(1, 4, 8), fig5_docs=1, fig4_steps=(0, 2), fig4_mults=(1, 4), fig4_docs=1, pk_mults=(1, 2),
        pk_depths=(0.0, 1.0), pk_per_cell=1, train_chars=300_000, pk_frac=0.125, long_mult=2,
    ),
}


@dataclass(frozen=True)
class RunSpec:
    """One fine-tuning run of the miniature, from the shipped base with the profile's token budget per step.

    ``scheme`` and ``family`` are registry names (checked here); ``fixed_scale``, ``n_sink``, ``scale_probs`` and
    ``target_len`` go to the run's :class:`~e2llm_lite.augment.AugmentConfig` as they are. ``steps`` (None = the
    profile's ``ft_steps``) and ``continue_from`` (start from that earlier run's checkpoint: resume is
    bit-identical, so "e2 for 3× the steps" costs only the extra steps) set the length; ``curve`` records
    perplexity vs steps (Fig. 4). ``eval_g`` is how its row in ``table_runs`` picks g: ``"auto"``
    (g = ⌈length / L⌉, §4.2.3), a number (the one g it was trained at) or None (unscaled); ``label`` names the
    row (default: the name and that rule).
    """

    name: str
    scheme: str
    family: str = "linear"
    fixed_scale: int | None = None
    n_sink: int = 4
    scale_probs: tuple | None = None
    target_len: int | None = None
    steps: int | None = None
    continue_from: str | None = None
    curve: bool = False
    eval_g: int | str | None = "auto"
    label: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or "/" in self.name or "|" in self.name:
            raise ValueError(f"RunSpec.name must be a non-empty name without '/' or '|', got {self.name!r}")
        get_scheme(self.scheme)  # ValueError naming the valid schemes
        get_family(self.family)  # ValueError naming the valid families
        if self.fixed_scale is not None:
            check_int(f"RunSpec {self.name!r}: fixed_scale", self.fixed_scale, 1)
        if self.steps is not None:
            check_int(f"RunSpec {self.name!r}: steps", self.steps, 1)
        if not (self.eval_g is None or self.eval_g == "auto" or (isinstance(self.eval_g, int) and self.eval_g >= 1)):
            raise ValueError(f"RunSpec {self.name!r}: eval_g must be 'auto', None or an integer g >= 1, got {self.eval_g!r}")
        if self.scale_probs is not None:
            object.__setattr__(self, "scale_probs", tuple(self.scale_probs))

    @property
    def sequence_scale(self) -> int:
        """Training rows are this many base windows long: the scheme's :meth:`~e2llm_lite.augment.Scheme.sequence_scale`
        at the run's g (PI at ``fixed_scale``: g; schemes that train on windows of L tokens: 1)."""
        return get_scheme(self.scheme).sequence_scale(self.fixed_scale or 1)

    def row_label(self) -> str:
        """Its row in ``table_runs``: ``label``, or the name with the g rule (and the family when not linear)."""
        if self.label:
            return self.label
        rule = {None: "g = 1", "auto": "g = length / L"}.get(self.eval_g, f"g = {self.eval_g}")  # type: ignore[arg-type]
        fam = "" if self.family == "linear" else f", {get_family(self.family).label}"
        return f"{self.name} ({rule}{fam})"


def runs(p: Profile) -> list[RunSpec]:
    """The profile's fine-tuning runs, in the order they are trained: the control, PI, E², the Table 4 ablations,
    the Table 5 sink counts, the levers (P(g) ∝ 1/g; E² for ``long_mult`` × the steps) and E² over each family."""
    out = [
        RunSpec("none", "none", eval_g=None),
        RunSpec("pi", "pi", fixed_scale=p.pi_scale, eval_g=p.pi_scale),
        RunSpec("e2", "e2", curve=True),
        RunSpec("e2-no-offset", "e2-no-offset"),
        RunSpec("e2-fixed-scale", "e2-fixed-scale", fixed_scale=p.fixed_scale),
    ]
    out += [RunSpec(f"e2-sink{s}", "e2", n_sink=s) for s in p.sinks if s != 4]
    if p.harmonic_run:  # lever: P(g) ∝ 1/g puts ~44 % of the draws on g ∈ {1, 2} (uniform: 12.5 %)
        h = [1.0 / g for g in range(1, p.g_max + 1)]
        out.append(RunSpec("e2-harmonic", "e2", scale_probs=tuple(x / sum(h) for x in h)))
    out += [RunSpec(f"e2-{fam}", "e2", family=fam) for fam in p.families]  # beyond the paper: the same draws, another family
    # lever: E² for long_mult × the steps, continued from the e2 run (the same first steps)
    out.append(RunSpec("e2-x3", "e2", steps=p.ft_steps * p.long_mult, continue_from="e2", curve=True))
    return out
