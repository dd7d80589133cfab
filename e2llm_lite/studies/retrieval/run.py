r"""``e2llm-lite reproduce --only retrieval``: a second small base trained *for* retrieval, and Fig. 6 on it.

Why a second base: the miniature's base (``e2llm-lite pretrain``, a pure language model
of 1.4 M parameters at ``L = 256``) retrieves 0 % of passkeys even inside its own window, so the
paper's Fig. 6 (passkey exact match on a depth × length heatmap, arXiv 2401.06951 §4.2) comes out empty
for every method and says nothing about length extension. Here a 2-layer Llama on the shipped
2,048-token BPE is pre-trained at ``L = 128`` with passkey rows (the ``"miniature"`` style of
:mod:`e2llm_lite.eval.retrieval`: digit-free filler, a marker and a 5-digit key at a random depth, the
marker repeated at the end) mixed into every batch and their answer cross-entropy added to the LM loss,
until it retrieves (~100 %) inside its window. Only then does "how far does each method carry
retrieval past L" have an answer.

==================  =================================================================================
phase               what it does
==================  =================================================================================
``base``            pre-train the retrieval base (``RetrievalProfile.pre_*``), measure its exact match at
                    ``L`` (``in_window_exact``; the gate for everything after it)
``finetune:<run>``  from the base, the same token budget each (PI trains ``ft_batch / g`` rows of
                    ``g·L``; E² ``ft_batch`` rows of ``R = L``), ``G_max = 16``, 4 sinks, passkey rows
                    mixed in as the paper mixes task data into fine-tuning (§4.1): ``pi`` (g = 4),
                    ``e2-linear`` (the paper), ``e2-yarn`` (the same draws of g applied by YaRN, which
                    keeps RoPE's fast frequencies, :mod:`e2llm_lite.scaling`). E² runs measure exact match
                    at 4·L, 8·L, 16·L every ``curve_every`` steps (does retrieval decay with E² steps?)
``grid:<method>``   Fig. 6: depths × lengths (1 … 16)·L, ``n_per_cell`` prompts per cell, held-out
                    filler; base (zero-shot linear g = n/L), base + YaRN (zero-shot), PI at its own
                    fixed g = 4 (as the paper evaluates a PI model), E²-linear, E²-yarn with their own
                    family and g = length / L; also the teacher-forced answer NLL per cell
``report``          ``results/retrieval/*.json``, ``figures/retrieval_fig6.png``,
                    ``figures/retrieval_steps.png`` and ``figures/REPORT_retrieval.md`` (prose and verdicts
                    generated from the measured numbers)
==================  =================================================================================

Resume: every phase writes its JSON into ``<out>/results/retrieval/`` and is skipped when it is there;
pre-training and fine-tuning checkpoint through :func:`e2llm_lite.train.loop.train` (exact resume).

This module is the runner (:class:`RetrievalRun`: the phases, the fine-tunes, the grids; the command
:func:`reproduce`; the shipped results). The sizes are :mod:`~e2llm_lite.studies.retrieval.profiles`', the base
:mod:`~e2llm_lite.studies.retrieval.base`'s, the measurements :mod:`~e2llm_lite.studies.retrieval.measure`'s, the
summary, verdicts and report :mod:`~e2llm_lite.studies.retrieval.report`'s and the figures
:mod:`~e2llm_lite.studies.retrieval.plots`'.
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from e2llm_lite import data as D
from e2llm_lite.atomic_files import load_json, save_json
from e2llm_lite.augment import AugmentConfig, get_scheme
from e2llm_lite.eval.retrieval import passkey_mix
from e2llm_lite.studies.retrieval.base import pretrain_base
from e2llm_lite.studies.retrieval.measure import curve_point, curve_samples, evaluate_grid
from e2llm_lite.studies.retrieval.plots import plot_fig6, plot_steps
from e2llm_lite.studies.retrieval.profiles import GRID_STEMS, METHODS, RETRIEVAL_PROFILES, RUNS, RetrievalProfile
from e2llm_lite.studies.retrieval.report import summarise, write_report
from e2llm_lite.train.loop import TrainConfig, train
from e2llm_lite.train.pretrain import train_tokens
from e2llm_lite.validation import check_int
from e2llm_lite.work_folder import claim_work_folder

__all__ = ["RetrievalRun", "SHIPPED", "ship_results", "shipped_results", "reproduce"]

#: the full study's compact results inside the package (notebook 05 reads them after a plain pip install)
SHIPPED = Path(__file__).resolve().parent / "assets" / "retrieval.json"
#: keys of results/retrieval/retrieval.json that ship (the fine-tuning histories stay in results/)
_SHIP_KEYS = ("profile", "L", "grids", "by_length", "far_mean", "beyond_lengths", "curves", "verdicts", "base")


class RetrievalRun:
    """One retrieval study: profile, folders, and every phase as a method (each skipped when its JSON exists)."""

    def __init__(self, profile: RetrievalProfile, out: str | os.PathLike, work: str | os.PathLike,
                 progress: bool = True, log=print) -> None:
        if not isinstance(profile, RetrievalProfile):
            raise ValueError(f"profile must be a RetrievalProfile, got {type(profile).__name__}")
        self.p, self.progress, self.log = profile, progress, log
        self.out, self.work = Path(out), Path(work)
        self.results, self.figures = self.out / "results" / "retrieval", self.out / "figures"
        for d in (self.results, self.figures, self.work):
            d.mkdir(parents=True, exist_ok=True)
        claim_work_folder(self.work / "profile.json", asdict(profile), "was made with another retrieval profile")
        self._tok = self._filler = self._train = None
        self._base = None
        self.models: dict[str, torch.nn.Module] = {}

    # --- helpers ---------------------------------------------------------------------------------------------

    _load = staticmethod(load_json)

    def _result(self, stem: str):
        return self._load(self.results / f"{stem}.json")

    def _save(self, stem: str, obj) -> dict:
        save_json(obj, self.results / f"{stem}.json")
        return obj

    @property
    def tok(self):
        if self._tok is None:
            self._tok = D.BPETokenizer.from_file(D.BASE_ASSETS / "tokenizer.json")  # the shipped 2,048-token BPE
        return self._tok

    @property
    def filler(self) -> str:
        """Evaluation haystack: held-out stdlib text (training rows use the train split)."""
        if self._filler is None:
            self._filler = D.filler_text(D.load_corpus(None, split="heldout", exts=(".py",)), 200_000)
        return self._filler

    def train_data(self):
        """``(corpus, stream)``: the train split's ``.py`` files and their packed tokens (cached in the work folder)."""
        if self._train is None:
            corpus = D.load_corpus(None, split="train", exts=(".py",))
            stream = train_tokens(self.tok, corpus, cache=self.work / "train_tokens.safetensors",
                                  max_chars=self.p.train_chars)
            self._train = (corpus, stream)
        return self._train

    def base(self):
        """The retrieval base as saved (bfloat16 weights, run in float32): the model every phase starts from."""
        from e2llm_lite.models import load_base

        if self._base is None:
            self._base = load_base(self.work / "base")[0]
        return self._base

    def _fresh_base(self):
        import copy

        m = copy.deepcopy(self.base())
        for q in m.parameters():
            q.requires_grad_(True)
        return m

    def model(self, run: str):
        from safetensors.torch import load_file

        if run == "base":
            return self.base()
        if run not in self.models:
            m = self._fresh_base()
            m.load_state_dict(load_file(str(self.work / "models" / f"{run}.safetensors")))
            self.models[run] = m.eval()
        return self.models[run]

    # --- phase: the retrieval base -----------------------------------------------------------------------------

    def pretrain_base(self) -> dict:
        """Pre-train at L with passkey rows in every batch; save; measure in-window exact match
        (:func:`~e2llm_lite.studies.retrieval.base.pretrain_base`)."""
        done = self._result("base")
        if done is not None and (self.work / "base" / "model.safetensors").is_file():
            return done
        out = pretrain_base(self.p, self.tok, self.filler, self.train_data, self.work, self.progress)
        self._base = None
        self.log(f"[retrieval] base: {out['params']:,} parameters, exact match at L = {out['L']}: "
                 f"{100 * out['in_window_exact']:.0f} % (n = {out['check_n']}), {out['wall_s']['pretrain']:.0f} s")
        return self._save("base", out)

    # --- phase: fine-tuning --------------------------------------------------------------------------------------

    def finetune(self, run: str) -> dict:
        """Fine-tune ``run`` ("pi", "e2-linear", "e2-yarn") from the base with the shared token budget."""
        from safetensors.torch import save_file

        if run not in RUNS:
            raise ValueError(f"unknown run {run!r}; valid: {', '.join(RUNS)}")
        path = self.work / "models" / f"{run}.safetensors"
        done = self._result(f"ft_{run}")
        if done is not None and path.is_file():
            return done
        p, L = self.p, self.p.L
        scheme, family = RUNS[run]
        g_train = get_scheme(scheme).sequence_scale(p.pi_scale)  # g for a scheme on g·L-token rows (PI), else 1
        R, batch = L * g_train, p.ft_batch // g_train  # PI pays g× longer rows for the same tokens per step
        n_pk, every = D.passkey_rows(batch, p.pk_frac)
        t0 = time.perf_counter()
        corpus, stream = self.train_data()
        data = passkey_mix(self.tok, corpus, stream, R, batch, n_pk, p.seed + 1, 200_000, every)
        aug = AugmentConfig(base_window=L, train_len=R, g_max=p.g_max, n_sink=p.n_sink,
                            fixed_scale=p.pi_scale if get_scheme(scheme).uses_fixed_scale else None, family=family)
        cfg = TrainConfig(steps=p.ft_steps, lr=p.ft_lr, warmup_steps=p.ft_warmup, batch_size=batch, seed=p.seed,
                          scheme=scheme, augment=aug, checkpoint_dir=str(self.work / "ckpt" / run),
                          checkpoint_every=p.checkpoint_every, log_every=10)
        samples = curve_samples(self.tok, self.filler, L, p.curve_mults, p.curve_n, p.seed) if scheme == "e2" else None

        def on_step(step, m, rec):  # E² runs: exact match every curve_every steps (and at the end)
            if samples is None or (step % p.curve_every and step != p.ft_steps):
                return None
            return curve_point(m, samples, L, family)
        model = self._fresh_base()
        res = train(model, data, cfg, progress=self.progress, on_step=on_step,
                    extra_loss=data.answer_loss(p.passkey_weight))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
        os.replace(tmp, path)
        self.models[run] = model.eval()
        hist = res.history
        out = {"run": run, "scheme": scheme, "family": family, "train_len": R, "batch": batch,
               "tokens_per_step": R * batch, "tokens": R * batch * p.ft_steps, "steps": p.ft_steps,
               "passkey_rows": n_pk, "passkey_every": every, "g_max": p.g_max,
               "fixed_scale": p.pi_scale if get_scheme(scheme).uses_fixed_scale else None,
               "loss_first": hist[0]["loss"], "loss_last_10": sum(h["loss"] for h in hist[-10:]) / len(hist[-10:]),
               "curve": [{"step": h["step"], **{k: v for k, v in h.items() if k.startswith(("exact@", "mean_exact"))}}
                         for h in hist if "mean_exact" in h],
               "loss": [[h["step"], round(h["loss"], 4)] for h in hist],
               "resumed_from": res.resumed_from,
               "wall_s": round(time.perf_counter() - t0, 1)}  # this call's (a resumed run: the rest only)
        self.log(f"[retrieval] fine-tuned {run}: {out['wall_s']:.0f} s")
        return self._save(f"ft_{run}", out)

    def curve_start(self) -> dict:
        """Step 0 of the exact-vs-steps curve: the base with each E² run's family (zero-shot)."""
        done = self._result("curve_step0")
        if done is not None:
            return done
        p, L = self.p, self.p.L
        samples = curve_samples(self.tok, self.filler, L, p.curve_mults, p.curve_n, p.seed)
        out = {run: curve_point(self.base(), samples, L, RUNS[run][1]) for run in ("e2-linear", "e2-yarn")}
        return self._save("curve_step0", out)

    # --- phase: Fig. 6 grids -----------------------------------------------------------------------------------

    def grid(self, method: str) -> dict:
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; valid: {', '.join(METHODS)}")
        stem = "grid_" + GRID_STEMS[method]
        done = self._result(stem)
        if done is not None:
            return done
        run, family, fixed = METHODS[method]
        p = self.p
        fixed_g = getattr(p, fixed) if fixed is not None else None
        t0 = time.perf_counter()
        g = evaluate_grid(self.model(run), self.tok, self.filler, p.L, p.mults, p.depths, p.n_per_cell, family, p.seed,
                          fixed_g=fixed_g)
        g.update(method=method, run=run, wall_s=round(time.perf_counter() - t0, 1))
        self.log(f"[retrieval] grid {method}: {g['wall_s']:.0f} s")
        return self._save(stem, g)

    # --- everything -------------------------------------------------------------------------------------------

    def run_all(self) -> dict:
        t0 = time.perf_counter()
        base = self.pretrain_base()
        fts = {run: self.finetune(run) for run in RUNS}
        step0 = self.curve_start()
        grids = {m: self.grid(m) for m in METHODS}
        res = summarise(self.p, base, fts, step0, grids)
        res.update(python=sys.version.split()[0], torch=torch.__version__, platform=platform.platform(),
                   threads=torch.get_num_threads(), wall_s_this_call=round(time.perf_counter() - t0, 1))
        self._save("retrieval", res)
        if self.p.name == "full":
            ship_results(res)
        plot_fig6(res, self.figures / "retrieval_fig6.png")
        plot_steps(res, self.figures / "retrieval_steps.png")
        write_report(res, self.figures / "REPORT_retrieval.md")
        return res


def ship_results(res: dict, path: str | os.PathLike = SHIPPED) -> Path:
    """Write the compact results (grids, curves, verdicts; no histories) as package data."""
    path = Path(path)
    save_json({k: res[k] for k in _SHIP_KEYS if k in res}, path)
    return path


def shipped_results() -> dict:
    """The full study's results as shipped inside the package: ``grids`` (Fig. 6 per method), ``by_length``,
    ``curves`` (exact match vs E² steps), ``verdicts``, ``profile``, ``L``. Needs no training."""
    return json.loads(SHIPPED.read_text(encoding="utf-8"))


# --- CLI ------------------------------------------------------------------------------------------------------


def reproduce(args) -> int:
    """``e2llm-lite reproduce --only retrieval`` (``--profile quick|full``, ``--out``, ``--work``, ``--steps``)."""
    if args.profile not in RETRIEVAL_PROFILES:
        raise ValueError(f"--only retrieval needs --profile in {sorted(RETRIEVAL_PROFILES)}, got {args.profile!r}")
    prof = RETRIEVAL_PROFILES[args.profile]
    if getattr(args, "steps", None) is not None:
        prof = replace(prof, ft_steps=check_int("--steps", args.steps, 1))
    if getattr(args, "seed", 0):
        prof = replace(prof, seed=int(args.seed))
    out = args.out or ("." if prof.name == "full" else f"runs/{prof.name}")
    work = args.work or f"runs/retrieval-{prof.name}/work"
    t0 = time.perf_counter()
    res = RetrievalRun(prof, out, work, progress=not args.no_progress).run_all()
    print(f"[retrieval] done in {time.perf_counter() - t0:.0f} s; report: {Path(out) / 'figures' / 'REPORT_retrieval.md'}")
    for k, v in res["verdicts"].items():
        print(f"  {k}: {'yes' if v['holds'] else 'no'} — {v['text']}")
    return 0
