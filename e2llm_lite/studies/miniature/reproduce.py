r"""The miniature's runner (``e2llm-lite reproduce``): the paper's experiments in miniature, on a laptop CPU.

From one tiny pre-trained base (``e2llm_lite/assets/base``, rebuilt by ``e2llm-lite pretrain``: a 1.4 M
parameter Llama, BPE of 2,048 tokens, window ``L = 256`` on the CPython standard library) we
fine-tune every run of the study's run list (:func:`e2llm_lite.studies.miniature.runs.runs`: one
:class:`~e2llm_lite.studies.miniature.runs.RunSpec` per run, a scheme of :data:`e2llm_lite.augment.SCHEMES`
and a family of :data:`e2llm_lite.scaling.FAMILIES` each) with **the same token budget**, then measure what
the paper's tables and figures measure:

=====================  ===========================================================================
phase                  what it does (paper analogue)
=====================  ===========================================================================
``data``               held-out files (stable path-hash split) -> evaluation segments of ``16·L``
``finetune:<run>``     each run of the list: ``none`` (continued at L), ``pi`` (g = 4 on 4·L
                       sequences: pays 4× longer sequences for the same tokens), ``e2``,
                       ``e2-no-offset``, ``e2-fixed-scale`` (Table 4) and ``e2`` with 0 / 2 / 6 sinks
                       (Table 5); a passkey task mix as the paper mixes task data (§4.1). The ``e2``
                       run also records PPL vs steps (Fig. 4)
``table3``             perplexity at L … 16·L: base, none, PI, E² with g = length/L and with one fixed
                       g per "E²-xK" row (Table 3)
``table4``/``table5``  the ablations, same protocol (Tables 4–5 use LongBench; we use perplexity)
``fig5``               E² at scales past G_max (unseen in training, Fig. 5)
``fig6``               passkey exact match on a depth × length grid (Fig. 6)
``families``           beyond the paper: E² over the ntk and yarn scale families (``e2-ntk``,
                       ``e2-yarn``, same budget as ``e2``) evaluated with their own family, and
                       zero-shot NTK / YaRN on the base and the control (``table3_families``)
``table_runs``         every run of the run list, one row each with its own g rule and family:
                       a scheme added to the list shows up here
``report``             ``figures/REPORT.md``: our numbers beside the paper's, a verdict per claim
=====================  ===========================================================================

Outputs: ``<out>/results/*.json`` and ``<out>/figures/{table3,table4,table5,table_runs}.{md,png}``,
``fig4.png``, ``fig5.png``, ``fig6.png``, ``REPORT.md``. Work files (checkpoints, fine-tuned
weights, a memo of every perplexity measured) go to ``--work``. **Resume:** a finished phase is
skipped (its JSON exists), an unfinished fine-tuning resumes from its checkpoint
(:func:`e2llm_lite.train.loop.train`, bit-identical), and each perplexity cell is memoised, so an
interrupted run picks up where it stopped with the same results. The command line is
:mod:`e2llm_lite.studies.reproduce`.
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Iterable

import torch

from e2llm_lite import data as D
from e2llm_lite.atomic_files import load_json, save_json
from e2llm_lite.augment import AugmentConfig
from e2llm_lite.studies.miniature.phases import GRID_TITLES, MeasurePhases, memo_key
from e2llm_lite.studies.miniature.runs import PROFILES, Profile, RunSpec, runs
from e2llm_lite.studies.miniature.runs import runs as default_runs
from e2llm_lite.train.loop import TrainConfig, train
from e2llm_lite.work_folder import claim_work_folder

__all__ = ["Profile", "PROFILES", "RunSpec", "runs", "Reproduction", "SHIPPED", "shipped_results",
           "full_profile_seconds", "render"]


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


#: grids that REPORT.md does not read
_NOT_IN_REPORT = ("table_runs",)


def render(out: str | os.PathLike) -> list[Path]:
    """Re-draw ``<out>/figures`` (tables as .md and .png, fig4–6, REPORT.md) from ``<out>/results/*.json``
    without training or evaluating anything (``e2llm-lite reproduce --render-only``). Returns the files written."""
    from e2llm_lite.eval.perplexity import PplGrid
    from e2llm_lite.studies.miniature.plots import plot_fig4, plot_fig5, plot_fig6, save_grid
    from e2llm_lite.studies.miniature.report import write_report

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
    for stem in _NOT_IN_REPORT:
        tables.pop(stem, None)
    write_report(tables, load("reproduce"), fig / "REPORT.md")
    return [*written, fig / "REPORT.md"]


def _check_runs(specs: Iterable[RunSpec]) -> list[RunSpec]:
    """The run list as a list: RunSpecs with unique names, each ``continue_from`` naming an earlier run."""
    out: list[RunSpec] = []
    for spec in specs:
        if not isinstance(spec, RunSpec):
            raise TypeError(f"a run list holds RunSpec entries, got {type(spec).__name__}")
        names = [s.name for s in out]
        if spec.name in names:
            raise ValueError(f"run {spec.name!r} appears twice in the run list")
        if spec.continue_from is not None and spec.continue_from not in names:
            raise ValueError(f"run {spec.name!r} continues from {spec.continue_from!r}, which is not an earlier run "
                             f"of the list ({', '.join(names) or 'none'})")
        out.append(spec)
    if not out:
        raise ValueError("the run list is empty")
    return out


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


class Reproduction(MeasurePhases):
    """One reproduction: profile, seed, folders, the base, the data, the run list — and every phase as a method.

    ``runs``: the fine-tuning runs (default :func:`~e2llm_lite.studies.miniature.runs.runs` of the profile), in
    the order they are trained; names are unique and ``continue_from`` names an earlier run. The paper's tables
    read the runs they compare by name; ``table_runs`` has a row for every run of the list.
    """

    def __init__(self, profile: Profile, out: str | os.PathLike, work: str | os.PathLike, seed: int = 0,
                 base: str | os.PathLike | None = None, progress: bool = True,
                 corpus: str | os.PathLike | None = None, runs: Iterable[RunSpec] | None = None) -> None:
        from e2llm_lite.models import load_base
        from e2llm_lite.validation import local_path

        self.runs = _check_runs(default_runs(profile) if runs is None else runs)
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

    def spec(self, name: str) -> RunSpec:
        """The run ``name`` of the run list; an unknown name is a ValueError listing them."""
        for spec in self.runs:
            if spec.name == name:
                return spec
        raise ValueError(f"unknown run {name!r}; runs: {', '.join(s.name for s in self.runs)}")

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
        from e2llm_lite.train.pretrain import train_tokens

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

    def finetune(self, name: str | RunSpec) -> None:
        """Fine-tune a run of the list (``name``, or its :class:`RunSpec`) from the base: ``spec.steps`` steps
        (default ``ft_steps``), from the checkpoint of ``spec.continue_from`` when set — exact because resume is
        bit-identical, so "e2 for 3× the steps" costs only the extra steps. A finished run is loaded instead.
        """
        from e2llm_lite.eval.retrieval import passkey_mix
        from safetensors.torch import load_file, save_file

        spec = name if isinstance(name, RunSpec) else self.spec(name)
        name = spec.name
        p, L = self.p, self.L
        path = self.work / "models" / f"{name}.safetensors"
        if path.is_file():  # finished earlier
            m = self._fresh_base()
            m.load_state_dict(load_file(str(path)))
            self.models[name] = m.eval()
            return
        scheme, steps, continue_from = spec.scheme, spec.steps, spec.continue_from
        g_seq = spec.sequence_scale  # the scheme's own rule: PI trains on g·L-token rows, E² on windows of L
        R = L * g_seq
        batch = max(1, p.ft_batch // g_seq)  # same tokens per step for every scheme
        aug = AugmentConfig(base_window=L, train_len=R, g_max=p.g_max, n_sink=spec.n_sink,
                            fixed_scale=spec.fixed_scale, scale_probs=spec.scale_probs,
                            family=spec.family, target_len=spec.target_len)
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
        if spec.curve:  # Fig. 4: PPL vs fine-tuning steps
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
        key = memo_key(run, g, length, segments, family)
        if key not in self.memo:
            model = self.base if run == "base" else self.models[run]
            r = _ppl(model, self.fig5_segments() if segments == "fig5" else self.segments, length, g, self.L, family)
            self.memo[key] = r.to_dict()
            save_json(self.memo, self.work / "ppl_memo.json")
        return self.memo[key]["ppl"]

    def run_families(self) -> dict:
        """``--only families``: the data, the none / pi / e2 / e2-<family> fine-tunes and ``table3_families``."""
        self._timed_data()
        for name in ("none", "pi", "e2", *(f"e2-{f}" for f in self.p.families)):
            self._timed_finetune(self.spec(name))
        self.times.pop("families", None)
        out = {}
        self._timed("families", lambda: out.__setitem__("families", self.families()))
        return out["families"]

    # --- everything ----------------------------------------------------------------------------

    def _timed_finetune(self, spec: RunSpec) -> None:
        """Fine-tune ``spec`` (or load it when finished) and record its wall time once."""
        t, done = time.perf_counter(), f"finetune:{spec.name}" in self.times
        self.finetune(spec)
        if not done:
            self.times[f"finetune:{spec.name}"] = round(time.perf_counter() - t, 1)
            save_json(self.times, self.work / "times.json")

    def run_all(self) -> dict:
        t0 = time.perf_counter()
        self._timed_data()
        for spec in self.runs:
            self._timed_finetune(spec)
        out = {}
        for name in ("table3", "table4", "table5", "levers", "fig4", "fig5", "fig6", "families", "table_runs"):
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
            "runs": {s.name: self._load(self.work / "train" / f"{s.name}.json") for s in self.runs},
            "wall_s": dict(self.times),
            "wall_s_this_call": round(time.perf_counter() - t0, 1),
        }
        for r in summary["runs"].values():  # keep the summary small: no per-step history
            if r is not None:
                h = r.pop("history")
                r["loss_first"], r["loss_last"] = h[0]["loss"], sum(x["loss"] for x in h[-10:]) / len(h[-10:])
                r["tokens_per_s"] = sum(x["tokens_per_s"] for x in h) / len(h)
        from e2llm_lite.studies.miniature.report import claims, write_report

        report = {k: v for k, v in out.items() if k not in _NOT_IN_REPORT}
        summary["claims"] = claims(report, self.p, self.L)
        save_json(summary, self.results / "reproduce.json")
        write_report(report, summary, self.figures / "REPORT.md")
        return summary

    def _timed_data(self):
        t = time.perf_counter()
        self.load_data()
        if "data" not in self.times:
            self.times["data"] = round(time.perf_counter() - t, 1)
            save_json(self.times, self.work / "times.json")
