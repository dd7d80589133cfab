"""A 20-second tour behind ``e2llm-lite demo``: E² draws for the paper's setting, and the E² hook checked against
transformers' own RoPE code (a parity check).

For tiny random Llama, Mistral and Qwen2 models it compares, at a drawn (g, t):

1. the hook (``inv_freq / g`` + integer ids ``m + t``) against float position ids ``(m + t)/g``
   fed straight to the unmodified model, and
2. the hook against a second model built by ``transformers`` itself with
   ``rope_parameters = {"rope_type": "linear", "factor": g}`` and the same weights,
3. ``save_for_scale`` → stock ``from_pretrained`` reload against the hook.

and prints the max-abs logit differences (also written as JSON with ``--out``).
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch

from e2llm_lite.augment import AugmentConfig, sample
from e2llm_lite.hf import e2_forward, rope_scale, save_for_scale
from e2llm_lite.models import ARCHITECTURES, tiny_model


@torch.inference_mode()
def hook_parity(arch: str, g: int = 5, seed: int = 0, base_window: int = 64, n_sink: int = 4) -> dict:
    """Max-abs logit differences of the hook against transformers' own paths (see module docstring)."""
    import transformers

    model = tiny_model(arch, seed=seed, base_window=base_window)
    cfg = AugmentConfig(base_window=base_window, train_len=base_window, g_max=g, fixed_scale=g, n_sink=n_sink)
    draw = sample(cfg, seed, batch_size=2, scheme="e2-fixed-scale")
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, model.config.vocab_size, (2, base_window), generator=gen)
    mask = torch.ones_like(ids)
    hooked = e2_forward(model, ids, draw).logits
    # 1) float positions (m + t)/g straight into the unmodified model
    ref_float = model(input_ids=ids, position_ids=draw.scaled_positions, attention_mask=mask).logits
    # 2) transformers' own linear RoPE scaling, same weights
    lin_cfg = model.config.__class__.from_dict(model.config.to_dict())
    lin_cfg.rope_parameters = {**model.config.rope_parameters, "rope_type": "linear", "factor": float(g)}
    lin_cfg._attn_implementation = model.config._attn_implementation
    lin = getattr(transformers, ARCHITECTURES[arch][1])(lin_cfg).eval()
    lin.load_state_dict(model.state_dict())
    ref_linear = lin(input_ids=ids, position_ids=draw.position_ids, attention_mask=mask).logits
    # 3) save for scale g -> stock reload; positions m (plain inference, t = 0)
    with tempfile.TemporaryDirectory() as d:
        save_for_scale(model, d, g)
        reloaded = transformers.AutoModelForCausalLM.from_pretrained(d, attn_implementation="sdpa").eval()
        with rope_scale(model, g):
            scaled = model(input_ids=ids, attention_mask=mask).logits
        ref_reload = reloaded(input_ids=ids, attention_mask=mask).logits
    return {
        "arch": arch,
        "g": g,
        "t": draw.shift.tolist(),
        "hook_vs_float_positions": (hooked - ref_float).abs().max().item(),
        "hook_vs_hf_linear": (hooked - ref_linear).abs().max().item(),
        "save_reload_vs_hook": (scaled - ref_reload).abs().max().item(),
        "logit_scale": hooked.abs().max().item(),
    }


def add_arguments(p: argparse.ArgumentParser) -> None:
    from e2llm_lite.validation import int_arg, out_file_arg

    p.add_argument("--seed", type=int_arg("--seed", 0), default=0, help="seed for weights, tokens and draws")
    p.add_argument("--g", type=int_arg("--g", 1), default=5, help="RoPE scale for the parity checks (>= 1)")
    p.add_argument("--out", type=out_file_arg("--out", folder_must_exist=True), default=None, help="write the parity table as JSON to this file")


def run(args) -> int:
    import transformers

    from e2llm_lite.validation import check_int

    check_int("--g", args.g, 1)  # before any work: the parity checks need a scale g >= 1
    transformers.utils.logging.disable_progress_bar()
    t0 = time.perf_counter()
    cfg = AugmentConfig(base_window=4096, train_len=4096, g_max=20)  # the paper's setting
    gen = torch.Generator().manual_seed(args.seed)
    print("E² draws for the paper's setting (L = R = 4096, G_max = 20, 4 sinks):")
    for i in range(5):
        d = sample(cfg, gen)
        pos = d.position_ids[0]
        print(
            f"  iteration {i}: g = {d.uniform_scale:2d}  t = {int(d.shift[0]):5d}  "
            f"position ids {pos[:6].tolist()} … {int(pos[-1])}  scaled max {float(d.scaled_positions.max()):.2f} < 4096"
        )
    print(f"\nHook parity at g = {args.g} (max |Δlogit|, tiny random models):")
    rows = [hook_parity(a, g=args.g, seed=args.seed) for a in ARCHITECTURES]
    print(f"  {'arch':8s} {'vs float pos':>14s} {'vs HF linear':>14s} {'save→reload':>14s}")
    for r in rows:
        print(
            f"  {r['arch']:8s} {r['hook_vs_float_positions']:14.2e} {r['hook_vs_hf_linear']:14.2e} "
            f"{r['save_reload_vs_hook']:14.2e}"
        )
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=2)
    print(f"\ndone in {time.perf_counter() - t0:.1f} s")
    return 0
