r"""The training loop of the project: Algorithm 1 of E²-LLM around any Hugging Face causal LM.

One loop serves the CPU miniature (a 1–3 M-parameter Llama, seconds per step) and a 7B model on a GPU
(full fine-tuning, LoRA, QLoRA: only parameters with ``requires_grad`` are optimised). Per optimizer
step ``i`` (paper §3.2, Algorithm 1):

1. draw ``(g_i, t_i)`` with :func:`e2llm_lite.augment.sample` from **one** persistent
   ``torch.Generator`` seeded by ``cfg.seed`` (scheme by name: ``none``, ``pi``, ``e2``, ablations);
2. for each of ``grad_accum`` micro-batches, take ``data.get_batch(i · grad_accum + micro)`` — a
   ``(B, R)`` LongTensor — and run forward **and** backward inside
   :func:`e2llm_lite.hf.e2_context` (positions ``(m + t)/g``, Eq. 5; an explicit attention mask);
3. loss = next-token cross-entropy (``labels = input_ids``) + optional ``extra_loss`` (e.g. more
   weight on passkey answer tokens); clip the gradient norm; AdamW step (paper §4.1:
   β = (0.9, 0.95), lr 1e-5 at 7B); linear warm-up then constant or cosine learning rate.

**Checkpoints and exact resume.** A checkpoint holds the trainable weights (safetensors), and, in a
``torch.save`` file loadable with ``weights_only=True``: optimizer and scheduler state, the draw
generator's and torch's RNG states, the step and the history. It is written to a temporary folder
and swapped in with ``os.replace``, so a crash never leaves a half-written checkpoint. ``train``
resumes from ``cfg.checkpoint_dir`` when a checkpoint is there; because batches are a pure function
of their index (:class:`e2llm_lite.data.PackedWindows`) and every random state is restored, a
resumed run ends with bit-identical weights (``tests/test_train.py``).
"""
from __future__ import annotations

import contextlib
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch

from e2llm_lite import augment
from e2llm_lite import hf
from e2llm_lite.augment import AugmentConfig
from e2llm_lite.validation import check_int

__all__ = ["TrainConfig", "TrainResult", "train", "load_checkpoint", "lr_lambda", "CKPT_NAME"]

#: sub-folder of ``checkpoint_dir`` holding the latest checkpoint
CKPT_NAME = "last"


@dataclass
class TrainConfig:
    """Knobs of one training run (defaults: the paper's fine-tuning recipe where it has one)."""

    steps: int = 1000  # optimizer steps
    lr: float = 1e-5  # paper: 1e-5 (AdamW)
    betas: tuple[float, float] = (0.9, 0.95)  # paper §4.1
    weight_decay: float = 0.0  # AdamW decoupled weight decay
    warmup_steps: int = 0  # linear warm-up, then constant or cosine (field `schedule`)
    schedule: str = "constant"  # "constant" | "cosine" (cosine decays to 10 % of lr)
    batch_size: int = 1  # micro-batch (sequences per forward)
    grad_accum: int = 1  # global batch = batch_size * grad_accum (paper: 16)
    max_grad_norm: float | None = 1.0  # gradient clipping; None = off
    seed: int = 0  # seeds the (g, t) generator (data order is the data source's own seed)
    scheme: str = "e2"  # name in augment.SCHEMES
    augment: AugmentConfig = field(default_factory=AugmentConfig)  # L, R, G_max, sinks, P, ...
    gradient_checkpointing: bool = False  # recompute activations in backward (memory for time)
    autocast_dtype: str | None = None  # e.g. "bfloat16" on GPU; None = the model's dtype
    checkpoint_dir: str | None = None  # where to save / resume; None = no checkpoints
    checkpoint_every: int = 0  # steps; 0 = only at the end
    log_every: int = 10  # steps between progress-bar updates of loss / g

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "grad_accum"):
            v = getattr(self, name)
            object.__setattr__(self, name, check_int(name, v, 0 if name == "steps" else 1))
        if self.schedule not in ("constant", "cosine"):
            raise ValueError(f"schedule must be 'constant' or 'cosine', got {self.schedule!r}")
        if self.scheme not in augment.SCHEMES:
            raise ValueError(f"unknown scheme {self.scheme!r}; valid: {', '.join(sorted(augment.SCHEMES))}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if self.warmup_steps < 0 or self.checkpoint_every < 0:
            raise ValueError(
                f"warmup_steps and checkpoint_every must be >= 0, got {self.warmup_steps} and {self.checkpoint_every}"
            )
        self.betas = tuple(self.betas)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainResult:
    """What a run returns: per-step history and where it ended."""

    history: list[dict]  # one record per step: step, loss, g, t, lr, tokens_per_s (+ on_step's dict)
    step: int  # optimizer steps done (== cfg.steps when finished)
    resumed_from: int = 0  # step a checkpoint resumed from (0 = fresh start)
    elapsed_s: float = 0.0  # wall time of this call (not of earlier, resumed-from calls)

    @property
    def final_loss(self) -> float | None:
        return self.history[-1]["loss"] if self.history else None


def lr_lambda(cfg: TrainConfig) -> Callable[[int], float]:
    """Multiplier of ``cfg.lr`` at step ``s``: 1) linear warm-up, 2) constant or cosine to 10 %."""

    def f(s: int) -> float:
        if cfg.warmup_steps and s < cfg.warmup_steps:  # 1) warm-up
            return (s + 1) / cfg.warmup_steps
        if cfg.schedule == "constant":
            return 1.0
        span = max(1, cfg.steps - cfg.warmup_steps)  # 2) cosine
        p = min(1.0, (s - cfg.warmup_steps) / span)
        return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * p))

    return f


# --- checkpoints -----------------------------------------------------------------------------


def _trainable(model) -> dict[str, torch.nn.Parameter]:
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def _save_checkpoint(ckpt_dir: Path, model, optimizer, scheduler, gen, step, history, cfg) -> None:
    """Write ``ckpt_dir/last`` atomically (tmp folder, then rename; old one removed last)."""
    from safetensors.torch import save_file

    ckpt_dir.mkdir(parents=True, exist_ok=True)
    final, tmp, old = ckpt_dir / CKPT_NAME, ckpt_dir / f"{CKPT_NAME}.tmp", ckpt_dir / f"{CKPT_NAME}.old"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    weights = {n: p.detach().to("cpu").contiguous() for n, p in _trainable(model).items()}
    save_file(weights, str(tmp / "trainable.safetensors"))
    state = {
        "step": int(step),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "draw_rng": gen.get_state(),
        "torch_rng": torch.get_rng_state(),
        "history": history,
        "config": _plain(cfg.to_dict()),
    }
    torch.save(state, tmp / "state.pt")
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def _plain(obj):
    """Config as plain lists/dicts/numbers (weights_only-loadable)."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def load_checkpoint(checkpoint_dir: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict] | None:
    """``(trainable weights, state)`` of the checkpoint in ``checkpoint_dir``, or None when there is none."""
    from safetensors.torch import load_file

    root = Path(checkpoint_dir)
    for name in (CKPT_NAME, f"{CKPT_NAME}.old"):  # .old survives a crash between the two renames
        d = root / name
        if (d / "state.pt").is_file() and (d / "trainable.safetensors").is_file():
            return load_file(str(d / "trainable.safetensors")), torch.load(d / "state.pt", weights_only=True)
    return None


# --- the loop --------------------------------------------------------------------------------


def _autocast(model, dtype: str | None):
    if dtype is None:
        return contextlib.nullcontext()
    try:
        dt = getattr(torch, dtype)
    except AttributeError:
        raise ValueError(f"autocast_dtype must name a torch dtype such as 'bfloat16', got {dtype!r}") from None
    dev = next(model.parameters()).device.type
    return torch.autocast(device_type=dev, dtype=dt)


def train(
    model,
    data,
    cfg: TrainConfig,
    optimizer_factory: Callable | None = None,
    progress: bool = True,
    on_step: Callable | None = None,
    extra_loss: Callable | None = None,
) -> TrainResult:
    """Fine-tune (or pre-train) ``model`` on ``data`` with ``cfg.scheme``; resume from ``cfg.checkpoint_dir``.

    ``data.get_batch(index) -> LongTensor[B, R]`` with ``index = step · grad_accum + micro``.
    ``optimizer_factory(params) -> Optimizer`` (default AdamW with cfg's lr, betas, weight decay).
    ``on_step(step, model, record) -> dict | None`` runs after each optimizer step (``step`` counts
    from 1); a returned dict is merged into that step's history record (and so survives resume).
    ``extra_loss(outputs, input_ids, index, draw) -> Tensor | None`` is added to the LM loss of a
    micro-batch. The model is left in eval mode.
    """
    # 1) what to train, how
    params = list(_trainable(model).values())
    if not params:
        raise ValueError("the model has no parameters with requires_grad=True; nothing to train")
    if optimizer_factory is None:
        optimizer = torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    else:
        optimizer = optimizer_factory(params)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg))
    gen = augment.make_generator(cfg.seed)  # ONE generator for every (g, t) draw of the run
    if cfg.gradient_checkpointing:
        # transformers >= 5 renames it activation_checkpointing_enable (the old name warns)
        enable = getattr(model, "activation_checkpointing_enable", None) or getattr(model, "gradient_checkpointing_enable", None)
        if enable is None:
            raise ValueError(f"{type(model).__name__} has no gradient checkpointing; set gradient_checkpointing=False")
        enable()
    device = next(model.parameters()).device

    # 2) resume
    step, history, resumed_from = 0, [], 0
    ckpt_dir = Path(cfg.checkpoint_dir) if cfg.checkpoint_dir else None
    if ckpt_dir is not None:
        found = load_checkpoint(ckpt_dir)
        if found is not None:
            weights, state = found
            names = _trainable(model)
            missing = sorted(set(names) - set(weights))
            if missing:
                raise ValueError(f"checkpoint in {ckpt_dir} lacks trainable weights {missing[:3]}...; wrong model?")
            with torch.no_grad():
                for n, p in names.items():
                    p.copy_(weights[n].to(p.device, p.dtype))
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            gen.set_state(state["draw_rng"])
            torch.set_rng_state(state["torch_rng"])
            step = resumed_from = int(state["step"])
            history = list(state["history"])

    # 3) the loop (Algorithm 1)
    bar = None
    if progress and step < cfg.steps:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.steps, initial=step, desc=f"train {cfg.scheme}", unit="step", dynamic_ncols=True)
    model.train()
    t_start = time.perf_counter()
    try:
        while step < cfg.steps:
            t0 = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            draw = None
            total, n_tok = 0.0, 0
            for micro in range(cfg.grad_accum):
                index = step * cfg.grad_accum + micro
                input_ids = data.get_batch(index).to(device)  # (B, R)
                if draw is None or cfg.augment.per_sample:  # Eq. (6): one (g, t) per iteration
                    draw = augment.sample(cfg.augment, gen, input_ids.shape[0], cfg.scheme, seq_len=input_ids.shape[1])
                with hf.e2_context(model, draw, input_ids) as kw:
                    with _autocast(model, cfg.autocast_dtype):
                        out = model(input_ids=input_ids, labels=input_ids, **kw)
                        loss = out.loss
                        if extra_loss is not None:
                            extra = extra_loss(out, input_ids, index, draw)
                            if extra is not None:
                                loss = loss + extra
                    (loss / cfg.grad_accum).backward()  # inside the block: same scale if recomputed
                total += float(loss.detach()) / cfg.grad_accum
                n_tok += input_ids.numel()
            if cfg.max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            lr = optimizer.param_groups[0]["lr"]
            optimizer.step()
            scheduler.step()
            step += 1
            rec = {
                "step": step,
                "loss": total,
                "g": int(draw.scale[0]),
                "t": int(draw.offset[0]),
                "lr": lr,
                "tokens_per_s": n_tok / max(time.perf_counter() - t0, 1e-9),
            }
            if on_step is not None:
                more = on_step(step, model, rec)
                model.train()
                if more:
                    rec.update(more)
            history.append(rec)
            if bar is not None:
                bar.update(1)
                if step % max(1, cfg.log_every) == 0 or step == cfg.steps:
                    bar.set_postfix(loss=f"{total:.3f}", g=rec["g"], refresh=False)
            if ckpt_dir is not None and cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < cfg.steps:
                _save_checkpoint(ckpt_dir, model, optimizer, scheduler, gen, step, history, cfg)
        if ckpt_dir is not None and step > resumed_from:
            _save_checkpoint(ckpt_dir, model, optimizer, scheduler, gen, step, history, cfg)
    finally:
        if bar is not None:
            bar.close()
        model.eval()
    return TrainResult(history=history, step=step, resumed_from=resumed_from, elapsed_s=time.perf_counter() - t_start)
