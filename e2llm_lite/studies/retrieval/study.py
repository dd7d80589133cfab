r"""``e2llm-lite reproduce --only retrieval``: a second small base trained *for* retrieval, and Fig. 6 on it.

Why a second base: the miniature's base (:mod:`e2llm_lite.studies.miniature.pretrain`, a pure language model
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
"""
from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from e2llm_lite import data as D
from e2llm_lite import hf
from e2llm_lite.atomic_files import atomic_write, claim_work_folder, load_json, save_fig, save_json
from e2llm_lite.augment import AugmentConfig
from e2llm_lite.eval.retrieval import passkey_sample, retrieval_accuracy
from e2llm_lite.train.loop import TrainConfig, train
from e2llm_lite.validation import check_int

__all__ = ["RetrievalProfile", "RETRIEVAL_PROFILES", "METHODS", "RetrievalRun", "evaluate_grid", "curve_point",
           "write_report", "plot_fig6", "plot_steps", "SHIPPED", "ship_results", "shipped_results", "run"]

#: the full study's compact results inside the package (notebook 05 reads them after a plain pip install)
SHIPPED = Path(__file__).resolve().parent / "assets" / "retrieval.json"
#: keys of results/retrieval/retrieval.json that ship (the fine-tuning histories stay in results/)
_SHIP_KEYS = ("profile", "L", "grids", "by_length", "far_mean", "beyond_lengths", "curves", "verdicts", "base")

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


# --- evaluation --------------------------------------------------------------------------------------------


def _cell_seed(seed: int, length: int, depth: float) -> int:
    return (int(seed) * 1_000_003 + int(length) * 1_009 + int(round(depth * 10_000))) % (2**63)


def _answer_nll(model, samples) -> float:
    """Mean teacher-forced cross-entropy of the answer tokens given the prompt (nats per token)."""
    ids = torch.stack([s.full_ids for s in samples])  # (B, n)
    a = samples[0].answer_ids.numel()
    with torch.inference_mode():
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[:, -a - 1 : -1]  # (B, A, V)
    return float(torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), ids[:, -a:].reshape(-1)))


def _scored(model, samples) -> tuple[float, float]:
    """(exact-match accuracy, answer NLL) of ``samples`` at the scale already applied to ``model``."""
    acc = retrieval_accuracy(model, samples, g=None, batch_size=8)
    groups: dict[int, list] = {}
    for s in samples:  # answers differ in token count: NLL per group of equal shapes, weighted by tokens
        groups.setdefault(s.answer_ids.numel(), []).append(s)
    was = model.training
    model.eval()
    try:
        tot = sum(_answer_nll(model, g[i : i + 8]) * len(g[i : i + 8]) * a
                  for a, g in groups.items() for i in range(0, len(g), 8))
    finally:
        model.train(was)
    return acc, tot / sum(s.answer_ids.numel() for s in samples)


def evaluate_grid(model, tokenizer, filler, L: int, mults, depths, n_per_cell: int, family: str = "linear",
                  seed: int = 0, fixed_g: float | None = None) -> dict:
    """Fig. 6 grid: exact match (and answer NLL) per (depth, length = k·L) with ``g = k`` of ``family``
    (or one ``fixed_g`` at every length: a PI model's own scale).

    Each cell's prompts depend only on (seed, length, depth), so every method sees the same prompts."""
    n_per_cell = check_int("n_per_cell", n_per_cell, 1)
    lengths = [int(k) * L for k in mults]
    gs = [float(fixed_g) if fixed_g is not None else n / L for n in lengths]
    acc = [[0.0] * len(lengths) for _ in depths]
    nll = [[0.0] * len(lengths) for _ in depths]
    for li, n in enumerate(lengths):
        with hf.rope_scale(model, gs[li], family=family, base_window=L):
            for di, d in enumerate(depths):
                gen = torch.Generator().manual_seed(_cell_seed(seed, n, d))
                samples = [passkey_sample(tokenizer, filler, n, float(d), gen, "miniature") for _ in range(n_per_cell)]
                acc[di][li], nll[di][li] = _scored(model, samples)
    return {"style": "miniature", "family": family, "L": L, "lengths": lengths, "depths": [float(d) for d in depths],
            "g": gs, "fixed_g": fixed_g, "accuracy": acc, "answer_nll": nll, "n_per_cell": n_per_cell, "seed": seed}


def curve_samples(tokenizer, filler, L: int, mults, n: int, seed: int) -> dict[int, list]:
    """The fixed prompts of the exact-vs-steps curve: ``n`` per length, depths spread evenly over [0, 1]."""
    out = {}
    for k in mults:
        gen = torch.Generator().manual_seed(_cell_seed(seed + 7, k * L, 0.5))
        out[k * L] = [passkey_sample(tokenizer, filler, k * L, i / max(1, n - 1), gen, "miniature") for i in range(n)]
    return out


def curve_point(model, samples: dict[int, list], L: int, family: str) -> dict:
    """``{"exact@<n>": …, "mean_exact": …}`` over the curve prompts, each length at g = n / L of ``family``."""
    rec = {}
    for n, ss in samples.items():
        with hf.rope_scale(model, n / L, family=family, base_window=L):
            rec[f"exact@{n}"] = retrieval_accuracy(model, ss, g=None, batch_size=8)
    rec["mean_exact"] = sum(rec.values()) / len(rec)
    return rec


# --- the study ---------------------------------------------------------------------------------------------


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
        from e2llm_lite.studies.miniature.pretrain import train_tokens

        if self._train is None:
            corpus = D.load_corpus(None, split="train", exts=(".py",))
            stream = train_tokens(self.tok, corpus, cache=self.work / "train_tokens.safetensors",
                                  max_chars=self.p.train_chars)
            self._train = (corpus, stream)
        return self._train

    def _spec(self):
        from e2llm_lite.studies.miniature.pretrain import BaseSpec

        p = self.p
        return BaseSpec(vocab_size=self.tok.vocab_size, hidden_size=p.hidden_size, num_layers=p.num_layers,
                        num_heads=p.num_heads, intermediate_size=p.intermediate_size, base_window=p.L,
                        steps=p.pre_steps, batch_size=p.pre_batch, lr=p.pre_lr, warmup_steps=p.pre_warmup,
                        seed=p.seed, n_passkey=p.pre_passkey, passkey_weight=p.passkey_weight)

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
        """Pre-train at L with passkey rows in every batch; save; measure in-window exact match."""
        done = self._result("base")
        if done is not None and (self.work / "base" / "model.safetensors").is_file():
            return done
        from e2llm_lite.studies.miniature.pretrain import passkey_mix, save_base

        p, L = self.p, self.p.L
        t0 = time.perf_counter()
        spec = self._spec()
        corpus, stream = self.train_data()
        model = spec.model()
        for q in model.parameters():
            q.requires_grad_(True)
        data = passkey_mix(self.tok, corpus, stream, L, p.pre_batch, p.pre_passkey, p.seed, spec.filler_chars)
        cfg = TrainConfig(steps=p.pre_steps, lr=p.pre_lr, warmup_steps=p.pre_warmup, schedule="cosine",
                          weight_decay=spec.weight_decay, batch_size=p.pre_batch, seed=p.seed, scheme="none",
                          augment=AugmentConfig(base_window=L, train_len=L, g_max=1),
                          checkpoint_dir=str(self.work / "ckpt" / "base"), checkpoint_every=p.checkpoint_every,
                          log_every=10)
        gen = torch.Generator().manual_seed(_cell_seed(p.seed + 5, L, 0.0))
        probe = [passkey_sample(self.tok, self.filler, L, i / max(1, p.pre_check_n - 1), gen, "miniature")
                 for i in range(p.pre_check_n)]

        def on_step(step, m, rec):  # the learning curve of the task, in window
            if step % p.pre_check_every and step != p.pre_steps:
                return None
            return {"exact@L": retrieval_accuracy(m, probe, g=None, batch_size=8)}

        res = train(model, data, cfg, progress=self.progress, on_step=on_step,
                    extra_loss=data.answer_loss(p.passkey_weight))
        t_train = time.perf_counter() - t0
        hist = res.history
        meta = {"spec": asdict(spec), "params": sum(q.numel() for q in model.parameters()),
                "train_tokens": int(len(stream)), "loss_first": hist[0]["loss"],
                "loss_last_50": sum(h["loss"] for h in hist[-50:]) / len(hist[-50:]),
                "resumed_from": res.resumed_from}
        save_base(model, self.tok, self.work / "base", meta)
        self._base = None
        gen = torch.Generator().manual_seed(_cell_seed(p.seed + 3, L, 0.0))
        samples = [passkey_sample(self.tok, self.filler, L, float(torch.rand((), generator=gen)), gen, "miniature")
                   for _ in range(p.check_n)]
        exact, nll = _scored(self.base(), samples)
        out = dict(meta, L=L, in_window_exact=exact, in_window_answer_nll=nll, check_n=p.check_n,
                   loss_curve=[[h["step"], round(h["loss"], 4)] for h in hist[:: max(1, len(hist) // 60)]],
                   exact_curve=[[h["step"], h["exact@L"]] for h in hist if "exact@L" in h],
                   wall_s={"pretrain": round(t_train, 1), "total": round(time.perf_counter() - t0, 1)},
                   threads=torch.get_num_threads())
        self.log(f"[retrieval] base: {meta['params']:,} parameters, exact match at L = {L}: {100 * exact:.0f} % "
                 f"(n = {p.check_n}), {t_train:.0f} s")
        return self._save("base", out)

    # --- phase: fine-tuning --------------------------------------------------------------------------------------

    def finetune(self, run: str) -> dict:
        """Fine-tune ``run`` ("pi", "e2-linear", "e2-yarn") from the base with the shared token budget."""
        from safetensors.torch import save_file

        from e2llm_lite.studies.miniature.pretrain import passkey_mix

        if run not in RUNS:
            raise ValueError(f"unknown run {run!r}; valid: {', '.join(RUNS)}")
        path = self.work / "models" / f"{run}.safetensors"
        done = self._result(f"ft_{run}")
        if done is not None and path.is_file():
            return done
        p, L = self.p, self.p.L
        scheme, family = RUNS[run]
        g_train = p.pi_scale if scheme == "pi" else 1
        R, batch = L * g_train, p.ft_batch // g_train  # PI pays g× longer rows for the same tokens per step
        n_pk, every = D.passkey_rows(batch, p.pk_frac)
        t0 = time.perf_counter()
        corpus, stream = self.train_data()
        data = passkey_mix(self.tok, corpus, stream, R, batch, n_pk, p.seed + 1, 200_000, every)
        aug = AugmentConfig(base_window=L, train_len=R, g_max=p.g_max, n_sink=p.n_sink,
                            fixed_scale=p.pi_scale if scheme == "pi" else None, family=family)
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
               "fixed_scale": p.pi_scale if scheme == "pi" else None,
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


# --- summary, verdicts, figures, report ------------------------------------------------------------------------


def _mean(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def _by_length(grid: dict) -> list[float]:
    """Exact match per length, averaged over depths."""
    return [_mean([row[li] for row in grid["accuracy"]]) for li in range(len(grid["lengths"]))]


def _se(p: float, n: int) -> float:
    return math.sqrt(max(p * (1 - p), 1.0 / n) / n)  # floor: one sample's worth at p = 0 or 1


def summarise(p: RetrievalProfile, base: dict, fts: dict, step0: dict, grids: dict) -> dict:
    """Everything the figures and the report need, with the verdicts computed from the numbers."""
    L = p.L
    by_len = {m: _by_length(g) for m, g in grids.items()}
    lengths = grids["base"]["lengths"]
    beyond = [li for li, n in enumerate(lengths) if n > L]
    n_cells = p.n_per_cell * len(p.depths)
    curves = {}
    n_pts = p.curve_n * len(p.curve_mults)  # prompts behind one curve point
    for run in ("e2-linear", "e2-yarn"):
        pts = [{"step": 0, **step0[run]}] + fts[run]["curve"]
        means = [x["mean_exact"] for x in pts]
        peak_i = max(range(len(means)), key=lambda i: means[i])
        # decay: the second half of the fine-tuning curve (step 0 excluded) below the first half by > 2 standard
        # errors — robust to the point-to-point noise a single "peak vs last" comparison mistakes for a trend
        tuned = means[1:] or means
        h = max(1, len(tuned) // 2)
        first, second = _mean(tuned[:h]), _mean(tuned[-h:])
        # the spread between checkpoints (not only the binomial error of n_pts prompts) sets the noise of a half-mean
        spread = lambda xs: sum((x - _mean(xs)) ** 2 for x in xs) / max(1, len(xs) - 1)  # noqa: E731
        se = math.sqrt(max(spread(tuned[:h]), _se(first, n_pts) ** 2) / h + max(spread(tuned[-h:]), _se(second, n_pts) ** 2) / h)
        curves[run] = {"points": pts, "peak": means[peak_i], "peak_step": pts[peak_i]["step"], "final": means[-1],
                       "step0": means[0], "first_half": first, "second_half": second, "se_halves": se,
                       "half_steps": [pts[1]["step"] if len(pts) > 1 else 0, pts[-1]["step"]],
                       "decays": bool(first - second > 2 * se), "n_per_point": n_pts,
                       "min_after_step0": min(tuned), "max_after_step0": max(tuned)}
    lin, yarn = curves["e2-linear"], curves["e2-yarn"]
    far = [li for li, n in enumerate(lengths) if n >= 4 * L]
    far_mean = {m: _mean([by_len[m][li] for li in far]) for m in grids}
    se_far = lambda a, b: _se(_mean([a, b]), n_cells * len(far)) * math.sqrt(2)  # noqa: E731
    gap = far_mean["E²-yarn"] - far_mean["E²-linear"]
    gap_zs = far_mean["E²-yarn"] - far_mean.get("base + YaRN", float("nan"))
    half = lambda c: (f"{100 * c['first_half']:.0f} % in the first half of fine-tuning, {100 * c['second_half']:.0f} % "  # noqa: E731
                      f"in the second (± {100 * c['se_halves']:.0f}), range {100 * c['min_after_step0']:.0f}–"
                      f"{100 * c['max_after_step0']:.0f} %, peak {100 * c['peak']:.0f} % at step {c['peak_step']}, "
                      f"last {100 * c['final']:.0f} %, step 0 (zero-shot) {100 * c['step0']:.0f} %")
    se_late = math.hypot(yarn["se_halves"], lin["se_halves"]) / math.sqrt(2)  # ~ the two second-half errors
    verdicts = {
        "base_learned": {"holds": base["in_window_exact"] >= 0.9,
                         "text": f"the base retrieves {100 * base['in_window_exact']:.0f} % exactly at L = {L} "
                                 f"(n = {base['check_n']}; threshold 90 %)"},
        "yarn_further": {"holds": gap > 2 * se_far(far_mean["E²-yarn"], far_mean["E²-linear"]),
                         "text": f"mean exact at ≥ 4·L: E²-yarn {100 * far_mean['E²-yarn']:.0f} % vs E²-linear "
                                 f"{100 * far_mean['E²-linear']:.0f} % (difference {100 * gap:+.0f} points, "
                                 f"± {100 * se_far(far_mean['E²-yarn'], far_mean['E²-linear']):.0f} one standard error)"},
        "linear_decays": {"holds": lin["decays"], "text": "E²-linear mean exact at " + ", ".join(
            f"{k}·L" for k in p.curve_mults) + ": " + half(lin)},
        "yarn_holds": {"holds": (not yarn["decays"]) and yarn["second_half"] - lin["second_half"] > 2 * se_late,
                             "text": "E²-yarn: " + half(yarn) + f"; second half {100 * (yarn['second_half'] - lin['second_half']):+.0f} "
                                     f"points vs E²-linear (± {100 * se_late:.0f})"},
    }
    if "base + YaRN" in far_mean:
        verdicts["e2_beyond_zero_shot_yarn"] = {
            "holds": gap_zs > 2 * se_far(far_mean["E²-yarn"], far_mean["base + YaRN"]),
            "text": f"mean exact at ≥ 4·L: E²-yarn {100 * far_mean['E²-yarn']:.0f} % vs the base with YaRN applied "
                    f"zero-shot {100 * far_mean['base + YaRN']:.0f} % (difference {100 * gap_zs:+.0f} points)"}
    return {"profile": json.loads(json.dumps(asdict(p))), "L": L, "base": base, "finetune": fts, "grids": grids,
            "by_length": by_len, "far_mean": far_mean, "beyond_lengths": [lengths[i] for i in beyond],
            "curves": curves, "verdicts": verdicts}


def _title(method: str, res: dict) -> str:
    L, p = res["L"], res["profile"]
    fam = res["grids"][method]["family"]
    what = {"base": "retrieval base, no fine-tuning (zero-shot)",
            "base + YaRN": "retrieval base, no fine-tuning (zero-shot)",
            "PI": f"base + PI fine-tune (trained g = {p['pi_scale']})",
            "E²-linear": f"base + E² fine-tune (g ∈ 1..{p['g_max']}, linear)",
            "E²-yarn": f"base + E² fine-tune (g ∈ 1..{p['g_max']}, YaRN)"}[method]
    return f"{method}: {what}\neval: {fam}, {_rule(res['grids'][method], L)}"


def _rule(grid: dict, L: int) -> str:
    """How a grid applied g: one fixed scale or g = length / L."""
    return f"g = {grid['fixed_g']:g} at every length" if grid.get("fixed_g") else f"g = length / {L}"


def plot_fig6(res: dict, path=None):
    """One Fig. 6 heatmap per method on one colour scale (0–100 % exact match): a grid of two columns (one row
    of five was 22 inches wide, unreadable at page width), the colour bar and a key in the last cell."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grids = res["grids"]
    ncols = 2
    nrows = -(-(len(grids) + 1) // ncols)  # one cell more for the colour bar
    fig, axes = plt.subplots(nrows, ncols, figsize=(9.0, 3.3 * nrows + 0.6), squeeze=False, layout="constrained")
    cells = list(axes.ravel())
    im = None
    for ax, (m, g) in zip(cells, grids.items()):
        acc = [[100 * a for a in row] for row in g["accuracy"]]
        im = ax.imshow(acc, cmap="RdYlGn", vmin=0, vmax=100, aspect="auto")
        ax.set_xticks(range(len(g["lengths"])), [str(n) for n in g["lengths"]])
        ax.set_yticks(range(len(g["depths"])), [f"{round(100 * d)}%" for d in g["depths"]])
        for di, row in enumerate(acc):
            for li, v in enumerate(row):
                ax.text(li, di, f"{v:.0f}", ha="center", va="center", fontsize=10)
        ax.set_xlabel("context length (tokens)")
        ax.set_title(_title(m, res), fontsize=9.5)
    for row in axes:
        row[0].set_ylabel("needle depth")
    key = cells[len(grids)]
    key.axis("off")
    cax = key.inset_axes((0.08, 0.62, 0.84, 0.09))
    fig.colorbar(im, cax=cax, orientation="horizontal", label="exact match (%)")
    top = max(max(g["lengths"]) for g in grids.values()) // res["L"]
    key.text(0.08, 0.38, f"each cell: % of {res['profile']['n_per_cell']} passkey prompts answered exactly,\n"
                         f"the needle at that depth (row) of a prompt\nof that length (column); "
                         f"L = {res['L']}, lengths 1·L … {top}·L", transform=key.transAxes, va="top", fontsize=9)
    for ax in cells[len(grids) + 1:]:
        ax.axis("off")
    fig.suptitle(f"Fig. 6 on the retrieval base ({res['profile']['num_layers']}-layer Llama, L = {res['L']}): "
                 f"passkey exact match, n = {res['profile']['n_per_cell']} per cell", fontsize=11)
    if path is not None:
        save_fig(fig, path)
    return fig, axes


def plot_steps(res: dict, path=None):
    """Exact match at each curve length vs E² fine-tuning steps, linear vs yarn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from e2llm_lite.pictures import MARKERS, distinguish_lines

    fig, ax = plt.subplots(figsize=(7.5, 5.0))
    colors, marks = {}, {}
    for run, style in (("e2-linear", "-"), ("e2-yarn", "--")):
        pts = res["curves"][run]["points"]
        steps = [x["step"] for x in pts]
        keys = sorted((k for k in pts[0] if k.startswith("exact@")), key=lambda k: int(k.split("@")[1]))
        for k in keys:
            n = int(k.split("@")[1])
            marks.setdefault(n, MARKERS[len(marks) % len(MARKERS)])  # colour and marker: the length
            line, = ax.plot(steps, [100 * x[k] for x in pts], style, marker=marks[n], ms=4, color=colors.get(n),
                            label=f"E²-{run.split('-')[1]} @ {n} ({n // res['L']}·L)")
            colors[n] = line.get_color()
    ax.set_xlabel("E² fine-tuning steps (step 0 = retrieval base, zero-shot)")
    ax.set_ylabel("passkey exact match (%)")
    ax.set_ylim(-3, 103)
    distinguish_lines(ax, markers=False, dashes=False)  # the E²-linear curves at 8·L and 16·L lie on 0 together
    ax.set_title(f"Exact match vs E² steps on the retrieval base (L = {res['L']}); "
                 f"n = {res['profile']['curve_n']} per point", fontsize=9.5)
    ax.legend(fontsize=7.5, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.14))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    if path is not None:
        save_fig(fig, path)
    return fig, ax


def _pct(x) -> str:
    return "—" if x is None else f"{100 * x:.0f}"


def _yes(v: dict) -> str:
    return "**yes**" if v["holds"] else "**no**"


def _reading(res: dict) -> str:
    """One paragraph that answers the study's question from the verdicts."""
    v, c, fm = res["verdicts"], res["curves"], res["far_mean"]
    lin, yarn = c["e2-linear"], c["e2-yarn"]
    out = ["**Reading.**"]
    if not v["base_learned"]["holds"]:
        return "**Reading.** The base does not retrieve inside its window, so nothing past L can be read from this run."
    out.append(f"E²-linear {'decays' if lin['decays'] else 'does not decay'} over fine-tuning here "
               f"({100 * lin['first_half']:.0f} % → {100 * lin['second_half']:.0f} % mean exact at the curve lengths, "
               f"checkpoints ranging {100 * lin['min_after_step0']:.0f}–{100 * lin['max_after_step0']:.0f} %);")
    out.append(f"E²-yarn {'keeps' if v['yarn_holds']['holds'] else 'does not keep'} retrieval "
               f"({100 * yarn['first_half']:.0f} % → {100 * yarn['second_half']:.0f} %) and "
               f"{'carries' if v['yarn_further']['holds'] else 'does not carry'} it further than E²-linear "
               f"({100 * fm['E²-yarn']:.0f} % vs {100 * fm['E²-linear']:.0f} % at ≥ 4·L in Fig. 6).")
    if "e2_beyond_zero_shot_yarn" in v:
        zs = fm["base + YaRN"]
        if v["e2_beyond_zero_shot_yarn"]["holds"]:
            out.append(f"E² training adds to what YaRN gives zero-shot ({100 * zs:.0f} % on the untouched base).")
        else:
            out.append(f"But the untouched base with YaRN applied zero-shot already retrieves {100 * zs:.0f} % at ≥ 4·L "
                       f"(step 0 of the curve: {100 * yarn['step0']:.0f} %): the gain is the family's (YaRN leaves "
                       "RoPE's fastest frequencies unscaled and interpolates only the slow ones), and E² fine-tuning "
                       "keeps it rather than creates it.")
    return " ".join(out)


def write_report(res: dict, path) -> str:
    """``REPORT_retrieval.md``: every number and verdict read from ``res`` (the summary of :func:`summarise`)."""
    p, L, base, v = res["profile"], res["L"], res["base"], res["verdicts"]
    lengths = res["grids"]["base"]["lengths"]
    fts = res["finetune"]
    lines = [
        "# Retrieval that can be measured: Fig. 6 on a base trained for retrieval",
        "",
        f"Generated by `e2llm-lite reproduce --only retrieval --profile {p['name']}` "
        f"(`e2llm_lite/studies/retrieval/study.py`) from `results/retrieval/*.json`; every number below is read "
        f"from those files.",
        "",
        "The miniature's language-model base retrieves nothing even inside its window, so its Fig. 6 is empty. "
        f"This study uses a **second base, the retrieval base**: a {p['num_layers']}-layer Llama "
        f"({base['params']:,} parameters, hidden {p['hidden_size']}, the shipped 2,048-token BPE) pre-trained at "
        f"L = {L} for {p['pre_steps']} steps with {p['pre_passkey']} of {p['pre_batch']} rows per batch passkey "
        f"samples (digit-free stdlib filler, `PASSKEY=<5 digits>` at a random depth, the marker repeated at the "
        f"end; answer cross-entropy × {p['passkey_weight']:g} added to the LM loss), peak lr {p['pre_lr']:g}, cosine. "
        f"**Every figure and table here uses this retrieval base**, not the shipped LM base.",
        "",
        "In-window exact match during pre-training (" + str(p["pre_check_n"]) + " prompts at L, depths evenly "
        "spread): " + ", ".join(f"step {s_} {_pct(x)} %" for s_, x in base.get("exact_curve", [])) + "; final check on "
        f"{base['check_n']} other prompts: {_pct(base['in_window_exact'])} %.",
        "",
        "## Verdicts",
        "",
        "| question | answer | evidence |",
        "|---|---|---|",
        f"| does the base retrieve inside its window (the precondition)? | {_yes(v['base_learned'])} | {v['base_learned']['text']} |",
        f"| does E²-linear's retrieval decay with more E² steps? | {_yes(v['linear_decays'])} | {v['linear_decays']['text']} |",
        f"| does E²-yarn keep retrieval through fine-tuning (no decay, and above E²-linear)? | {_yes(v['yarn_holds'])} | {v['yarn_holds']['text']} |",
        f"| does E²-yarn carry retrieval further than E²-linear? | {_yes(v['yarn_further'])} | {v['yarn_further']['text']} |",
    ]
    if "e2_beyond_zero_shot_yarn" in v:
        lines.append(f"| does E²-yarn fine-tuning beat YaRN applied zero-shot to the base? | "
                     f"{_yes(v['e2_beyond_zero_shot_yarn'])} | {v['e2_beyond_zero_shot_yarn']['text']} |")
    lines += [
        "",
        "A decay counts when the mean exact match (all curve lengths) over the second half of the fine-tuning "
        "curve is below that over the first half by more than two standard errors (from the spread between "
        f"checkpoints, at least the binomial error of n = {res['curves']['e2-linear']['n_per_point']} prompts per "
        "point); yarn \"keeps\" retrieval when it does not decay and its second half is above linear's by more "
        "than two standard errors.",
        "",
        _reading(res),
        "",
        f"## Fig. 6: exact match by length (mean over {len(p['depths'])} depths, n = {p['n_per_cell']} per cell)",
        "",
        "![Fig. 6](retrieval_fig6.png)",
        "",
        "| method | evaluated with | " + " | ".join(f"{n} ({n // L}·L)" for n in lengths) + " |",
        "|---|---|" + "---|" * len(lengths),
    ]
    for m, g in res["grids"].items():
        lines.append(f"| {m} | {g['family']}, {_rule(g, L)} | " + " | ".join(f"{_pct(x)} %" for x in res["by_length"][m]) + " |")
    lines += [
        "",
        "Answer NLL (teacher-forced cross-entropy of the answer tokens, nats per token, mean over depths) — "
        "a graded view of the same prompts where exact match is 0:",
        "",
        "| method | " + " | ".join(str(n) for n in lengths) + " |",
        "|---|" + "---|" * len(lengths),
    ]
    for m, g in res["grids"].items():
        nll = [_mean([row[li] for row in g["answer_nll"]]) for li in range(len(lengths))]
        lines.append(f"| {m} | " + " | ".join(f"{x:.2f}" for x in nll) + " |")
    lines += [
        "",
        "## Exact match vs E² steps",
        "",
        "![exact vs steps](retrieval_steps.png)",
        "",
    ]
    lin_pts, yarn_pts = res["curves"]["e2-linear"]["points"], res["curves"]["e2-yarn"]["points"]
    keys = sorted((k for k in lin_pts[0] if k.startswith("exact@")), key=lambda k: int(k.split("@")[1]))
    lines.append("| step | " + " | ".join(f"linear {k.split('@')[1]}" for k in keys) + " | linear mean | "
                 + " | ".join(f"yarn {k.split('@')[1]}" for k in keys) + " | yarn mean |")
    lines.append("|---|" + "---|" * (2 * len(keys) + 2))
    for a, b in zip(lin_pts, yarn_pts):
        lines.append(f"| {a['step']} | " + " | ".join(f"{_pct(a[k])}" for k in keys) + f" | {_pct(a['mean_exact'])} | "
                     + " | ".join(f"{_pct(b[k])}" for k in keys) + f" | {_pct(b['mean_exact'])} |")
    lines += [
        "",
        "Step 0 is the retrieval base evaluated zero-shot with each run's family. "
        f"Prompts: {p['curve_n']} per length, depths evenly spread over [0, 1], the same at every step and for both runs.",
        "",
        "## Fine-tuning (same token budget each)",
        "",
        "| run | scheme | family | rows × length | tokens per step | passkey rows | steps | loss first → last 10 | wall |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run, f in fts.items():
        pk = f"{f['passkey_rows']} per batch" + ("" if f["passkey_every"] == 1 else f" every {f['passkey_every']}th")
        lines.append(f"| {run} | {f['scheme']} | {f['family']} | {f['batch']} × {f['train_len']} | {f['tokens_per_step']:,} | "
                     f"{pk} | {f['steps']} | {f['loss_first']:.2f} → {f['loss_last_10']:.2f} | {f['wall_s']:.0f} s |")
    lines += [
        "",
        f"Fine-tuning: lr {p['ft_lr']:g} (constant after {p['ft_warmup']} warm-up steps), G_max = {p['g_max']}, "
        f"{p['n_sink']} sink tokens, passkey share {p['pk_frac']:g} of rows (task data mixed in as in the paper's "
        f"§4.1); PI uses g = {p['pi_scale']}.",
        "",
        "## Wall times",
        "",
        f"- pre-training the retrieval base: {base['wall_s']['pretrain']:.0f} s ({p['pre_steps']} steps; "
        f"in-window check included: {base['wall_s']['total']:.0f} s)",
    ]
    for run, f in fts.items():
        lines.append(f"- fine-tune {run}: {f['wall_s']:.0f} s" + (" (resumed: this call's part only)" if f["resumed_from"] else ""))
    for m, g in res["grids"].items():
        lines.append(f"- Fig. 6 grid {m}: {g['wall_s']:.0f} s")
    lines += [f"- measured on {res.get('threads', '?')} torch thread(s), Python {res.get('python', '?')}, "
              f"torch {res.get('torch', '?')}, a shared 2-core CPU", ""]
    text = "\n".join(lines)
    atomic_write(path, text)
    return text


# --- CLI ------------------------------------------------------------------------------------------------------


def run(args) -> int:
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
