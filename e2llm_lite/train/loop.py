r"""The training loop of the project: Algorithm 1 of E²-LLM around any Hugging Face causal LM, on 🤗 accelerate.

One loop serves the CPU miniature (a 1–3 M-parameter Llama, seconds per step), a 7B model on one GPU
(full fine-tuning, LoRA, QLoRA: only parameters with ``requires_grad`` are optimised) and the paper's
16 GPUs. Per optimizer step ``i`` (paper §3.2, Algorithm 1):

1. draw ``(g_i, t_i)`` with :func:`e2llm_lite.augment.sample_for_step` — a pure function of
   ``(cfg.seed, i)``, so every process and every micro-batch of the step uses the same pair without
   communicating (scheme by name, any entry of :data:`e2llm_lite.augment.SCHEMES`: ``none``, ``pi``,
   ``e2``, ablations, a registered one — the loop reads only the draw's ``position_ids``, ``scale`` and
   ``shift``; ``per_sample`` draws one pair per sequence from ``(seed, i, micro, row)``);
2. for each of ``grad_accum`` micro-batches, take ``data.get_batch(i · grad_accum + micro)`` — the
   global micro-batch, a ``(B · N, R)`` LongTensor of which process ``r`` of ``N`` trains rows
   ``r·B … r·B + B − 1`` — and run forward **and** backward inside :func:`e2llm_lite.hf.e2_context`
   (positions ``(m + t)/g``, Eq. 5; an explicit attention mask);
3. loss = next-token cross-entropy (``labels = input_ids``) + optional ``extra_loss``; clip the
   gradient norm; AdamW step (paper §4.1: β = (0.9, 0.95), lr 1e-5 at 7B); linear warm-up then
   constant or cosine learning rate.

**accelerate does the plumbing** (``accelerate.Accelerator``): device placement, mixed precision
(``autocast_dtype``), gradient accumulation (``accumulate``: no gradient all-reduce until the last
micro-batch, loss ÷ ``grad_accum``), wrapping in DDP / FSDP / DeepSpeed ZeRO as the launch config
says, and saving sharded state. Launch N processes with ``torchrun --nproc_per_node N`` or
``accelerate launch --config_file configs/accelerate/….yaml`` (``docs/multi_gpu.md``); one process
needs no launcher. Because batches and draws are functions of the step, one process with global
micro-batch B and N processes with B/N each train on the same sequences with the same ``(g, t)``.

**Checkpoints and exact resume.** ``accelerator.save_state`` writes the trainable weights
(safetensors; full FSDP/DeepSpeed shards under those engines), the optimizer and every process's RNG
state; ``state.pt`` (loadable with ``weights_only=True``) adds the step, the scheduler and the
history. It all goes to a temporary folder that the main process swaps in with ``os.replace``, so a
crash never leaves a half-written checkpoint (with several machines, ``checkpoint_dir`` must be on a
shared file system). ``train`` resumes from ``cfg.checkpoint_dir`` when a checkpoint is there;
because batches and draws are pure functions of their index and every random state is restored, a
resumed run ends with bit-identical weights (``tests/train/test_loop.py``, and under 2 processes
``tests/train/test_distributed.py``).
"""
from __future__ import annotations

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
from e2llm_lite.train.distributed import check_draw_semantics, check_engine
from e2llm_lite.validation import check_int

__all__ = ["TrainConfig", "TrainResult", "train", "make_accelerator", "load_checkpoint", "lr_lambda", "CKPT_NAME"]

#: sub-folder of ``checkpoint_dir`` holding the latest checkpoint
CKPT_NAME = "last"
#: the trainable tensors of an unsharded model, written in place of accelerate's full ``model.safetensors``
WEIGHTS_NAME = "trainable.safetensors"
#: autocast dtype -> accelerate's mixed_precision
_MIXED = {None: "no", "bfloat16": "bf16", "float16": "fp16"}


@dataclass
class TrainConfig:
    """Knobs of one training run (defaults: the paper's fine-tuning recipe where it has one)."""

    steps: int = 1000  # optimizer steps
    lr: float = 1e-5  # paper: 1e-5 (AdamW)
    betas: tuple[float, float] = (0.9, 0.95)  # paper §4.1
    weight_decay: float = 0.0  # AdamW decoupled weight decay
    warmup_steps: int = 0  # linear warm-up, then constant or cosine (field `schedule`)
    schedule: str = "constant"  # "constant" | "cosine" (cosine decays to 10 % of lr)
    batch_size: int = 1  # micro-batch per process (sequences per forward)
    grad_accum: int = 1  # global batch = batch_size × grad_accum × processes (paper: 16)
    max_grad_norm: float | None = 1.0  # gradient clipping; None = off
    seed: int = 0  # the draw of step i is a function of (seed, i) (data order is the data source's own seed)
    scheme: str = "e2"  # name in augment.SCHEMES
    augment: AugmentConfig = field(default_factory=AugmentConfig)  # L, R, G_max, sinks, P, ...
    gradient_checkpointing: bool = False  # recompute activations in backward (memory for time)
    autocast_dtype: str | None = None  # e.g. "bfloat16" on GPU; None = the model's dtype
    checkpoint_dir: str | None = None  # where to save / resume; None = no checkpoints
    checkpoint_every: int = 0  # steps; 0 = only at the end
    log_every: int = 10  # steps between progress-bar updates of loss / g
    draw_per: str | None = None  # "iteration" | "sample": assert the reading of Eq. (6); None = augment.per_sample

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

    history: list[dict]  # one record per step: step, loss, g, t (the draw's shift), lr, tokens_per_s (+ on_step's dict)
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


def make_accelerator(cfg: TrainConfig, device: torch.device | str = "cpu"):
    """The ``accelerate.Accelerator`` :func:`train` uses when none is given.

    ``device`` is where the model lives: a model on the CPU runs on CPU processes (gloo under
    torchrun), one on a GPU on the GPU of each process. In a single process, settings of an earlier
    Accelerator in the same interpreter (a notebook running two configs) are forgotten first.
    """
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    check_engine()  # FSDP / DeepSpeed asked for on a machine that cannot run them -> ValueError
    if cfg.autocast_dtype not in _MIXED:
        raise ValueError(f"autocast_dtype must be one of {[k for k in _MIXED if k]} or None, got {cfg.autocast_dtype!r}")
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        AcceleratorState._reset_state(reset_partial_state=True)
    return Accelerator(
        cpu=torch.device(device).type == "cpu",
        mixed_precision=_MIXED[cfg.autocast_dtype],
        gradient_accumulation_steps=cfg.grad_accum,
        step_scheduler_with_optimizer=False,  # our scheduler counts optimizer steps, once each
    )


# --- checkpoints -----------------------------------------------------------------------------


def _trainable(model) -> dict[str, torch.nn.Parameter]:
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def _plain(obj):
    """Config as plain lists/dicts/numbers (weights_only-loadable)."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def _install_state_hooks(acc, raw) -> None:
    """Unsharded engines save and load only the trainable tensors, named as in the bare model.

    (A LoRA checkpoint of a 7B model stays megabytes, and a checkpoint written by N processes loads
    in any number of processes.) FSDP and DeepSpeed keep accelerate's own sharded files.
    """
    from safetensors.torch import load_file, save_file

    def save_hook(models, weights, output_dir):
        if not weights:  # FSDP / DeepSpeed: accelerate saves the shards
            return
        if acc.is_main_process:
            tensors = {n: p.detach().to("cpu").contiguous() for n, p in _trainable(raw).items()}
            save_file(tensors, str(Path(output_dir) / WEIGHTS_NAME))
        weights.clear()  # saved: accelerate must not write the full model again

    def load_hook(models, input_dir):
        path = Path(input_dir) / WEIGHTS_NAME
        if not models or not path.is_file():
            return
        weights, names = load_file(str(path)), _trainable(raw)
        missing = sorted(set(names) - set(weights))
        if missing:
            raise ValueError(f"checkpoint in {input_dir} lacks trainable weights {missing[:3]}...; wrong model?")
        with torch.no_grad():
            for n, p in names.items():
                p.copy_(weights[n].to(p.device, p.dtype))
        models.clear()  # loaded: accelerate must not load them again

    acc.register_save_state_pre_hook(save_hook)
    acc.register_load_state_pre_hook(load_hook)


def _save_checkpoint(acc, ckpt_dir: Path, scheduler, step: int, history: list, cfg: TrainConfig) -> None:
    """Write ``ckpt_dir/last`` atomically: all processes fill ``last.tmp``, the main one renames it."""
    final, tmp, old = ckpt_dir / CKPT_NAME, ckpt_dir / f"{CKPT_NAME}.tmp", ckpt_dir / f"{CKPT_NAME}.old"
    if acc.is_main_process:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
    acc.wait_for_everyone()
    acc.save_state(str(tmp))  # weights (or shards), optimizer, each process's RNG states
    acc.wait_for_everyone()
    if acc.is_main_process:
        state = {"step": int(step), "scheduler": scheduler.state_dict(), "history": history,
                 "num_processes": acc.num_processes, "config": _plain(cfg.to_dict())}
        torch.save(state, tmp / "state.pt")
        if final.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    acc.wait_for_everyone()


def _find_checkpoint(checkpoint_dir: str | os.PathLike) -> Path | None:
    root = Path(checkpoint_dir)
    for name in (CKPT_NAME, f"{CKPT_NAME}.old"):  # .old survives a crash between the two renames
        if (root / name / "state.pt").is_file():
            return root / name
    return None


def load_checkpoint(checkpoint_dir: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict] | None:
    """``(trainable weights, state)`` of the checkpoint in ``checkpoint_dir``, or None when there is none.

    The weights are empty for a checkpoint sharded by FSDP / DeepSpeed (load those with ``train``).
    """
    from safetensors.torch import load_file

    d = _find_checkpoint(checkpoint_dir)
    if d is None:
        return None
    weights = load_file(str(d / WEIGHTS_NAME)) if (d / WEIGHTS_NAME).is_file() else {}
    return weights, torch.load(d / "state.pt", weights_only=True)


# --- the loop --------------------------------------------------------------------------------


def _rank_rows(x: torch.Tensor, rank: int, world: int, what: str) -> torch.Tensor:
    """Rows ``rank·B … rank·B + B − 1`` of a global micro-batch of ``B · world`` rows."""
    if x.shape[0] % world:
        raise ValueError(
            f"{what} has {x.shape[0]} rows, not a multiple of the {world} processes; data.get_batch must return "
            f"the global micro-batch: batch_size × num_processes rows"
        )
    b = x.shape[0] // world
    return x[rank * b : (rank + 1) * b]


def train(
    model,
    data,
    cfg: TrainConfig,
    optimizer_factory: Callable | None = None,
    progress: bool = True,
    on_step: Callable | None = None,
    extra_loss: Callable | None = None,
    accelerator=None,
) -> TrainResult:
    """Fine-tune (or pre-train) ``model`` on ``data`` with ``cfg.scheme``; resume from ``cfg.checkpoint_dir``.

    ``data.get_batch(index) -> LongTensor[B·N, R]`` with ``index = step · grad_accum + micro``: the global
    micro-batch of all N processes (N = 1: just the batch). ``optimizer_factory(params) -> Optimizer``
    (default AdamW with cfg's lr, betas, weight decay). ``on_step(step, model, record) -> dict | None`` runs
    on every process after each optimizer step (``step`` counts from 1); a returned dict is merged into
    that step's history record (and so survives resume). ``extra_loss(outputs, input_ids, index, draw) ->
    Tensor | None`` is added to the LM loss of a micro-batch (this process's rows; ``draw.extra["rows"]`` says
    which rows of the global micro-batch they are). ``accelerator``: an ``accelerate.Accelerator``
    built with ``gradient_accumulation_steps=cfg.grad_accum`` (default :func:`make_accelerator`). The model
    is left in eval mode; its parameters hold the trained weights on every process (DDP) or this process's
    shards (FSDP / DeepSpeed ZeRO-3: use ``accelerator.get_state_dict``).
    """
    # 1) what to train, how; accelerate places, wraps (DDP / FSDP / DeepSpeed) and accumulates
    params = list(_trainable(model).values())
    if not params:
        raise ValueError("the model has no parameters with requires_grad=True; nothing to train")
    acc = accelerator if accelerator is not None else make_accelerator(cfg, next(model.parameters()).device)
    if acc.gradient_accumulation_steps != cfg.grad_accum:
        raise ValueError(f"the accelerator accumulates {acc.gradient_accumulation_steps} micro-batches but "
                         f"cfg.grad_accum={cfg.grad_accum}; build it with gradient_accumulation_steps={cfg.grad_accum}")
    rank, world = acc.process_index, acc.num_processes
    check_draw_semantics(cfg.augment.per_sample, cfg.batch_size, world, cfg.draw_per)
    if cfg.gradient_checkpointing:
        # transformers >= 5 renames it activation_checkpointing_enable (the old name warns)
        enable = getattr(model, "activation_checkpointing_enable", None) or getattr(model, "gradient_checkpointing_enable", None)
        if enable is None:
            raise ValueError(f"{type(model).__name__} has no gradient checkpointing; set gradient_checkpointing=False")
        enable()
    if optimizer_factory is None:
        optimizer = torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    else:
        optimizer = optimizer_factory(params)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg))
    ds_plugin = getattr(acc.state, "deepspeed_plugin", None)
    if ds_plugin is not None:  # no DataLoader for DeepSpeed to read the batch size from: say it
        ds = ds_plugin.deepspeed_config
        ds["train_micro_batch_size_per_gpu"] = cfg.batch_size
        ds["train_batch_size"] = cfg.batch_size * cfg.grad_accum * world
    engine, optimizer = acc.prepare(model, optimizer)  # engine: the model as wrapped for the launch
    raw = acc.unwrap_model(engine)  # the bare model: its rotary modules take the scale g
    _install_state_hooks(acc, raw)

    # 2) resume
    step, history, resumed_from = 0, [], 0
    ckpt_dir = Path(cfg.checkpoint_dir) if cfg.checkpoint_dir else None
    found = _find_checkpoint(ckpt_dir) if ckpt_dir is not None else None
    if found is not None:
        acc.load_state(str(found))  # weights, optimizer, this process's RNG states
        state = torch.load(found / "state.pt", weights_only=True)
        scheduler.load_state_dict(state["scheduler"])
        step = resumed_from = int(state["step"])
        history = list(state["history"])

    # 3) the loop (Algorithm 1)
    bar = None
    if progress and step < cfg.steps and acc.is_main_process:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.steps, initial=step, desc=f"train {cfg.scheme}", unit="step", dynamic_ncols=True)
    engine.train()
    t_start = time.perf_counter()
    try:
        while step < cfg.steps:
            t0 = time.perf_counter()
            total = torch.zeros((), dtype=torch.float64)
            n_tok = 0
            for micro in range(cfg.grad_accum):
                index = step * cfg.grad_accum + micro
                batch = data.get_batch(index)  # (B·N, R): the global micro-batch
                # Eq. (6)-(7): (g, t) from (seed, step) — the same on every process and micro-batch
                draw = augment.sample_for_step(cfg.augment, cfg.seed, step, batch.shape[0], cfg.scheme,
                                               seq_len=batch.shape[1], micro=micro)
                input_ids = _rank_rows(batch, rank, world, "data.get_batch(index)").to(acc.device)  # (B, R)
                draw.scale, draw.shift, draw.position_ids = (
                    _rank_rows(t, rank, world, "draw") for t in (draw.scale, draw.shift, draw.position_ids))
                draw.params = {k: _rank_rows(v, rank, world, f"draw.params[{k!r}]") for k, v in draw.params.items()}
                b = input_ids.shape[0]
                draw.extra["rows"] = (rank * b, (rank + 1) * b)  # this process's rows of the global micro-batch
                with acc.accumulate(engine), hf.e2_context(raw, draw, input_ids) as kw:
                    out = engine(input_ids=input_ids, labels=input_ids, **kw)
                    loss = out.loss
                    if extra_loss is not None:
                        extra = extra_loss(out, input_ids, index, draw)
                        if extra is not None:
                            loss = loss + extra
                    acc.backward(loss)  # ÷ grad_accum; inside the block: same scale if recomputed
                total += loss.detach().double().cpu() / cfg.grad_accum
                n_tok += input_ids.numel()
            # the last micro-batch synchronised the gradients of all processes: one optimizer step
            if cfg.max_grad_norm is not None:
                acc.clip_grad_norm_([p for p in engine.parameters() if p.requires_grad], cfg.max_grad_norm)
            lr = optimizer.param_groups[0]["lr"]
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            if world > 1:  # the logged loss is the mean over processes (identical history everywhere)
                total = acc.reduce(total.to(acc.device), reduction="mean").cpu()
            rec = {
                "step": step,
                "loss": float(total),
                "g": int(draw.scale[0]),
                "t": int(draw.shift[0]),  # the draw's shift: E²'s offset t (0 for none / pi)
                "lr": lr,
                "tokens_per_s": n_tok * world / max(time.perf_counter() - t0, 1e-9),
            }
            if on_step is not None:
                more = on_step(step, raw, rec)
                engine.train()
                if more:
                    rec.update(more)
            history.append(rec)
            if bar is not None:
                bar.update(1)
                if step % max(1, cfg.log_every) == 0 or step == cfg.steps:
                    bar.set_postfix(loss=f"{rec['loss']:.3f}", g=rec["g"], refresh=False)
            if ckpt_dir is not None and cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < cfg.steps:
                _save_checkpoint(acc, ckpt_dir, scheduler, step, history, cfg)
        if ckpt_dir is not None and step > resumed_from:
            _save_checkpoint(acc, ckpt_dir, scheduler, step, history, cfg)
    finally:
        if bar is not None:
            bar.close()
        engine.eval()
    return TrainResult(history=history, step=step, resumed_from=resumed_from, elapsed_s=time.perf_counter() - t_start)
