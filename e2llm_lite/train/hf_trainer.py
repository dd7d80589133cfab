r"""E² for anyone's trainer: a collator and a hook for a stock ``transformers.Trainer``, TRL's
``SFTTrainer`` or a plain accelerate loop — no model subclass, no trainer subclass.

Algorithm 1 of E²-LLM (arXiv 2401.06951, §3.2) needs, per optimizer step ``i``, one scale ``g_i`` and
offset ``t_i`` (Eq. 6–7) applied as positions ``(m + t)/g`` (Eq. 5) in the forward **and** the
backward pass. Two pieces:

* :class:`E2DataCollator` stacks equal-length token windows into ``input_ids``, ``labels``,
  ``attention_mask`` and plain ``position_ids`` (``0 … R−1``). It is **step-free** on purpose: a
  ``DataLoader`` with ``num_workers > 0`` runs the collator in worker processes that prefetch batches
  ahead of training; a worker's own counter, or a copy of ``trainer.state`` taken when it started, does
  not know which optimizer step its batch will land in.
* :class:`E2Hook` (any loop) and :class:`E2Callback` (``Trainer``; a ``TrainerCallback``) apply the
  draw in the main process, where the step is known: ``begin_step(i)`` draws ``(g_i, t_i)`` with
  :func:`e2llm_lite.augment.sample_for_step` — a pure function of ``(seed, i)``, so every rank and every
  gradient-accumulation micro-batch of step ``i`` gets the same pair — and enters
  :func:`e2llm_lite.hf.rope_scale` (``inv_freq / g``) until ``end_step()``, so a backward that
  recomputes activations (gradient checkpointing) sees the same g. A forward pre-hook on the model
  replaces the batch's ``position_ids`` with the draw's ``m + t`` (sinks keep ``m``). The callback
  reads the step from ``trainer.state.global_step`` (restored on resume). With ``per_sample=True``
  each row gets its own pair from ``(seed, i, micro, row)`` (row of the global micro-batch, so the
  draws do not depend on the number of processes), applied as float positions ``(m + t)/g``.

Usage with ``Trainer`` (docs/multi_gpu.md; ``tests/train/test_hf_trainer.py`` runs it with ``num_workers=2``)::

    aug = AugmentConfig(base_window=4096, train_len=4096, g_max=20)       # the paper's §4.1
    trainer = Trainer(model=model, args=args, train_dataset=windows,      # rows: {"input_ids": R ids}
                      data_collator=E2DataCollator(), callbacks=[E2Callback(aug, seed=0)])
    trainer.train()
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import torch

from e2llm_lite import augment, hf
from e2llm_lite.augment import AugmentConfig
from e2llm_lite.validation import check_int

__all__ = ["E2DataCollator", "E2Hook", "E2Callback"]


class E2DataCollator:
    """Stack token windows into a causal-LM batch; right-pad shorter rows (mask 0, label ``-100``).

    ``features``: dicts with ``input_ids`` (list or 1-D tensor). Output: ``input_ids`` and
    ``attention_mask`` ``(B, T)``, ``labels`` (= ``input_ids``, ``-100`` on padding; the model shifts
    them) and ``position_ids`` ``0 … T−1`` that :class:`E2Hook` replaces with the step's ``m + t``.
    """

    def __init__(self, pad_token_id: int = 0, max_length: int | None = None) -> None:
        self.pad_token_id = check_int("pad_token_id", pad_token_id, 0)
        self.max_length = None if max_length is None else check_int("max_length", max_length, 1)

    def __call__(self, features: Sequence[dict]) -> dict[str, torch.Tensor]:
        if not features:
            raise ValueError("E2DataCollator got an empty batch")
        rows = [torch.as_tensor(f["input_ids"], dtype=torch.int64).reshape(-1) for f in features]
        T = max(len(r) for r in rows)
        if self.max_length is not None and T > self.max_length:
            raise ValueError(f"a row has {T} tokens, more than max_length={self.max_length} (the training length R)")
        ids = torch.full((len(rows), T), self.pad_token_id, dtype=torch.int64)  # (B, T)
        mask = torch.zeros((len(rows), T), dtype=torch.int64)
        for i, r in enumerate(rows):
            ids[i, : len(r)], mask[i, : len(r)] = r, 1
        labels = ids.masked_fill(mask == 0, -100)
        pos = torch.arange(T, dtype=torch.int64).expand(len(rows), T).clone()
        return {"input_ids": ids, "labels": labels, "attention_mask": mask, "position_ids": pos}


class E2Hook:
    """Apply step ``i``'s E² draw to ``model``'s training forwards between ``begin_step(i)`` and ``end_step()``.

    ``rank`` and ``num_processes`` place this process's rows in the global micro-batch (per-sample draws
    only). ``log`` records ``{"step", "micro", "g", "t"}`` of every training forward (lists per row; ``t`` is the
    draw's shift, E²'s offset). ``scheme``: any entry of :data:`e2llm_lite.augment.SCHEMES` — the hook feeds the
    draw's ``position_ids`` and applies its ``scale``, whatever scheme built them.
    Eval forwards (``model.training`` False) and forwards outside a step are left alone.
    """

    def __init__(self, model: torch.nn.Module, cfg: AugmentConfig, seed: int = 0, scheme: str = "e2",
                 rank: int = 0, num_processes: int = 1) -> None:
        if scheme not in augment.SCHEMES:
            raise ValueError(f"unknown scheme {scheme!r}; valid: {', '.join(sorted(augment.SCHEMES))}")
        hf.rotary_modules(model)  # ValueError for a model without (supported) RoPE
        self.model, self.cfg, self.seed, self.scheme = model, cfg, check_int("seed", seed, 0), scheme
        self.num_processes = check_int("num_processes", num_processes, 1)
        self.rank = check_int("rank", rank, 0, self.num_processes - 1)
        self.step: int | None = None
        self.micro = 0
        self.log: list[dict] = []
        self._draw: augment.Draw | None = None
        self._scale = contextlib.ExitStack()
        self._handle = model.register_forward_pre_hook(self._pre_forward, with_kwargs=True)

    def begin_step(self, step: int) -> None:
        """Draw ``(g, t)`` for optimizer step ``step`` (from ``(seed, step)``) and scale RoPE by g."""
        self.end_step()
        self.step, self.micro = check_int("step", step, 0), 0
        if not self.cfg.per_sample:  # Eq. (6): one g for the whole step, applied as inv_freq / g
            self._draw = augment.sample_for_step(self.cfg, self.seed, self.step, 1, self.scheme)
            self._scale.enter_context(hf.rope_scale(self.model, int(self._draw.scale[0]), family=self._draw.family,
                                                    base_window=self._draw.base_window))

    def end_step(self) -> None:
        """Restore the model's RoPE exactly (after the optimizer step)."""
        self._scale.close()
        self.step, self._draw = None, None

    @contextlib.contextmanager
    def step_scope(self, step: int) -> Iterator["E2Hook"]:
        """``with hook.step_scope(i): …forward/backward of every micro-batch…`` for a plain loop."""
        self.begin_step(step)
        try:
            yield self
        finally:
            self.end_step()

    def remove(self) -> None:
        self.end_step()
        self._handle.remove()

    def _pre_forward(self, module, args, kwargs):
        if self.step is None or not module.training:
            return None
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is None:
            raise ValueError("E2Hook needs input_ids (as the first argument or a keyword) to place positions")
        B, T = ids.shape
        if T > self.cfg.train_len:
            raise ValueError(f"batch of {T} tokens is longer than the training length R={self.cfg.train_len}")
        if self._draw is not None:  # per iteration: integer ids m + t, g already in inv_freq
            draw = self._draw
            pos = draw.position_ids[:, :T].expand(B, T)  # (B, T)
            g, t = [int(draw.scale[0])] * B, [int(draw.shift[0])] * B
        else:  # per sample: this process's rows of the global micro-batch, float positions (m + t)/g
            rows = B * self.num_processes
            draw = augment.sample_for_step(self.cfg, self.seed, self.step, rows, self.scheme, seq_len=T, micro=self.micro)
            sl = slice(self.rank * B, (self.rank + 1) * B)
            hf.check_position_ids(draw.position_ids[sl])
            pos = draw.position_ids[sl].to(torch.float32) / draw.scale[sl].to(torch.float32)[:, None]
            g, t = draw.scale[sl].tolist(), draw.shift[sl].tolist()
        if "flash" in str(getattr(getattr(module, "config", None), "_attn_implementation", "")):
            pos = hf.fa2_safe_position_ids(pos)
        kwargs["position_ids"] = pos.to(ids.device)
        if kwargs.get("attention_mask") is None:  # packed-sequence trap: always pass a mask
            kwargs["attention_mask"] = torch.ones_like(ids)
        self.log.append({"step": self.step, "micro": self.micro, "g": g, "t": t})
        self.micro += 1
        return args, kwargs


def _callback_base():
    from transformers import TrainerCallback

    return TrainerCallback


class E2Callback(_callback_base()):
    """``transformers.Trainer`` callback: :class:`E2Hook` driven by ``state.global_step``.

    ``on_step_begin`` (first micro-batch of an optimizer step) → ``begin_step(global_step)``;
    ``on_step_end`` (after the optimizer step) → ``end_step()``. The draws therefore follow the
    trainer's own step counter — the same on every rank, restored by ``resume_from_checkpoint`` — and
    never a counter in a DataLoader worker. ``hook.log`` holds what was applied.
    """

    def __init__(self, cfg: AugmentConfig, seed: int = 0, scheme: str = "e2") -> None:
        self.cfg, self.seed, self.scheme = cfg, seed, scheme
        self.hook: E2Hook | None = None
        self.log: list[dict] = []  # every applied draw: {"step", "micro", "g", "t"}

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if self.hook is not None:
            self.hook.remove()
        self.hook = E2Hook(model, self.cfg, self.seed, self.scheme, rank=args.process_index,
                           num_processes=args.world_size)
        self.hook.log = self.log

    def on_step_begin(self, args, state, control, **kwargs):
        self.hook.begin_step(state.global_step)

    def on_step_end(self, args, state, control, **kwargs):
        self.hook.end_step()

    def on_train_end(self, args, state, control, **kwargs):
        if self.hook is not None:
            self.hook.remove()
            self.hook = None
