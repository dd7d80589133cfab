r"""Memory and time planner: what one GPU needs to fine-tune a model with E² at R tokens vs PI at L′.

E²-LLM's selling point (paper §1, Fig. 1) is cost: PI must train *at* the target window L′ (16K, 32K,
64K — one run per window), E² trains once at the base window R = L = 4K and serves all of them. This
module turns that into numbers for *your* GPU before you rent one: peak memory per component and
tokens/s, for full fine-tuning, LoRA and QLoRA. ``benchmarks/gpu_modes.py`` measures the same rows on
a GPU (``torch.cuda.max_memory_allocated``) so the estimate can be checked.

**Parameters** (Llama layout: SwiGLU MLP, RMSNorm, grouped-query attention; h hidden, I intermediate,
k = kv_heads·head_dim, V vocab, n layers):

.. math:: N = \underbrace{Vh}_{\text{embed}} + n\,(2h^2 + 2hk + 3hI + 2h) + h + \underbrace{Vh}_{\text{lm head}}

(Llama-2-7B: 6,738,415,616.) **Static memory** (bytes): weights ``N·w`` (w = 2 for bf16; QLoRA: 4-bit
NF4 linears at 0.5 byte + quantisation constants, the rest bf16); gradients and AdamW states for the
*trainable* parameters only (torch AdamW keeps m and v in the parameter's dtype; bitsandbytes' 8-bit
AdamW one byte each plus a float32 absmax per 256-block; LoRA adapters are float32, as peft makes them).

**Activations** (bytes per token, a = activation bytes, 2 in bf16). Counted on transformers 5.x's
``LlamaDecoderLayer`` by hooking the tensors autograd saves for backward
(``torch.autograd.graph.saved_tensors_hooks``; ``tests/train/test_planner.py`` re-measures them) with
SDPA / FlashAttention, which keep only the output and a float32 log-sum-exp per head — no
:math:`T^2` score matrix, so activations are *linear* in T:

.. math:: A_{layer} = a\,(8h + 2k + 4I) + 4(n_{heads} + 2) + [a = 2]\;4h   \qquad \text{(full)}

.. math:: A_{layer} = a\,(5h + 2k + 3I + r\,n_{lora}) + 4(n_{heads} + 2) + [a = 2]\;11h   \qquad \text{(LoRA)}

(LoRA saves less: a frozen projection needs no copy of its input for a weight gradient. The
``[a = 2]`` terms: RMSNorm's float32 upcast, 4h, and — LoRA under bf16 autocast — peft's float32
copies of the adapters' inputs, ≈ 7h; exact in the other cases, within 3 % in this one). With gradient checkpointing (one checkpoint per decoder layer,
as ``model.gradient_checkpointing_enable()`` does) each layer keeps only its input, ``a·h``, and one
layer's activations are rebuilt at a time in backward. The loss adds ``T·V`` terms that dominate at
64K: the logits (a), their float32 copy (4), the saved log-softmax (4) and its gradient (4).

**Time.** Training FLOPs per token, with causal attention (each query sees T/2 keys on average):

.. math:: F = \underbrace{6N_{mm}}_{\text{fwd 2, bwd 4}} + \underbrace{6\,n\,h\,T}_{\text{attention, fwd 2nhT}}

(:math:`N_{mm}` = matmul parameters = N minus the embedding table). LoRA skips the weight-gradient
half of the backward matmuls (``4N + 6nhT``); checkpointing adds one more forward (``+2N + 2nhT``).
tokens/s = ``utilisation × peak FLOP/s ÷ hardware FLOPs per token``; MFU reports the standard model
FLOPs ``6N + 6nhT`` per token over the peak. **The utilisation is an assumption (default 0.40 for
LoRA/full, 0.28 for QLoRA, whose 4-bit dequantisation costs time), not a measurement** — measure it
with ``benchmarks/gpu_modes.py``. Peak bf16 dense FLOP/s: A100 312 T, H100 SXM 989 T, H200 989 T.

Sources: activation counting after Korthikanti et al. 2022 (*Reducing Activation Recomputation in
Large Transformer Models*), FLOPs after Kaplan et al. 2020 and PaLM's MFU (Chowdhery et al. 2022,
App. B), QLoRA memory after Dettmers et al. 2023; E²'s setting from the paper §4.1.

**One module, on purpose** (about 550 lines, a tenth of them this docstring): the formulae above and the code that
evaluates them belong side by side. It reads in three parts — the estimator (:class:`ModelShape`,
:class:`PlanConfig`, :func:`estimate`), the paper's Fig. 1 as numbers (:func:`fig1_rows`, :func:`to_markdown`,
:func:`plot_fig1`) and the ``e2llm-lite plan`` command — and the last two are thin readers of the first.
"""
from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from e2llm_lite.atomic_files import atomic_write, save_json
from e2llm_lite.figure_files import save_figure
from e2llm_lite.validation import (check_int, float_arg, int_arg, int_list_arg, local_path, out_file_arg)

__all__ = [
    "ModelShape",
    "PRESETS",
    "GPUS",
    "PlanConfig",
    "Estimate",
    "MODES",
    "OPTIMIZERS",
    "shape_of",
    "estimate",
    "fig1_rows",
    "to_markdown",
    "plot_fig1",
    "add_arguments",
    "run",
]

GiB = 2**30

#: training modes; "qlora" = LoRA on a 4-bit NF4 base
MODES = ("full", "lora", "qlora")
#: optimizers the planner (and modes.optimizer_factory) know
OPTIMIZERS = ("adamw", "adamw8bit", "paged_adamw8bit")
#: GPU -> (peak dense bf16 FLOP/s, memory in bytes); vendor data sheets, dense (no sparsity)
GPUS = {
    "a100-80gb": (312e12, 80 * GiB),
    "h100-80gb": (989e12, 80 * GiB),  # SXM
    "h200": (989e12, 141 * GiB),
    "a100-40gb": (312e12, 40 * GiB),
    "l4": (121e12, 24 * GiB),
}


@dataclass(frozen=True)
class ModelShape:
    """The numbers of a Llama-layout decoder that set its cost."""

    vocab_size: int  # V
    hidden_size: int  # h
    intermediate_size: int  # I (SwiGLU: gate, up, down)
    num_layers: int  # n
    num_heads: int  # query heads
    num_kv_heads: int  # key/value heads (GQA when < num_heads)
    tie_embeddings: bool = False  # lm_head shares the embedding matrix

    @property
    def kv_dim(self) -> int:
        """k = kv_heads × head_dim."""
        return self.num_kv_heads * (self.hidden_size // self.num_heads)

    @property
    def layer_linear(self) -> int:
        """Weights of the 7 projections of one layer: q, o (h²), k, v (h·k), gate, up, down (h·I)."""
        h = self.hidden_size
        return 2 * h * h + 2 * h * self.kv_dim + 3 * h * self.intermediate_size

    @property
    def n_embed(self) -> int:
        return self.vocab_size * self.hidden_size

    @property
    def n_head(self) -> int:
        """lm_head parameters (0 when tied to the embedding)."""
        return 0 if self.tie_embeddings else self.vocab_size * self.hidden_size

    @property
    def n_norm(self) -> int:
        """RMSNorm weights: two per layer and a final one."""
        return (2 * self.num_layers + 1) * self.hidden_size

    @property
    def n_params(self) -> int:
        """N (formula in the module docstring)."""
        return self.n_embed + self.num_layers * self.layer_linear + self.n_norm + self.n_head

    @property
    def n_matmul(self) -> int:
        """N_mm: parameters used in matrix products (N minus the embedding lookup table)."""
        return self.num_layers * self.layer_linear + self.vocab_size * self.hidden_size


#: shapes of public models (from their config.json), so planning needs no download
PRESETS = {
    "llama-2-7b": ModelShape(32000, 4096, 11008, 32, 32, 32),
    "llama-2-13b": ModelShape(32000, 5120, 13824, 40, 40, 40),
    "llama-3-8b": ModelShape(128256, 4096, 14336, 32, 32, 8),
    "mistral-7b": ModelShape(32000, 4096, 14336, 32, 32, 8),
}
#: Hub ids that map to a preset
HUB_IDS = {
    "meta-llama/Llama-2-7b-hf": "llama-2-7b",
    "meta-llama/Llama-2-7b-chat-hf": "llama-2-7b",
    "meta-llama/Llama-2-13b-hf": "llama-2-13b",
    "meta-llama/Meta-Llama-3-8B": "llama-3-8b",
    "mistralai/Mistral-7B-v0.1": "mistral-7b",
}


def shape_of(model_or_config) -> ModelShape:
    """A :class:`ModelShape` from a preset name, Hub id, local path, ``transformers`` config or model."""
    if isinstance(model_or_config, ModelShape):
        return model_or_config
    if isinstance(model_or_config, (str, os.PathLike)):
        name = str(model_or_config)
        if name in PRESETS:
            return PRESETS[name]
        if name in HUB_IDS:
            return PRESETS[HUB_IDS[name]]
        p = Path(name)
        cfg_file = p / "config.json" if p.is_dir() else p
        if not cfg_file.is_file():
            raise ValueError(
                f"model {name!r} is neither a preset ({', '.join(PRESETS)}), a known Hub id, nor a folder or "
                f"config.json on disk"
            )
        d = json.loads(cfg_file.read_text(encoding="utf-8"))
    else:
        cfg = getattr(model_or_config, "config", model_or_config)
        d = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)
    try:
        heads = int(d["num_attention_heads"])
        return ModelShape(
            vocab_size=int(d["vocab_size"]),
            hidden_size=int(d["hidden_size"]),
            intermediate_size=int(d["intermediate_size"]),
            num_layers=int(d["num_hidden_layers"]),
            num_heads=heads,
            num_kv_heads=int(d.get("num_key_value_heads") or heads),
            tie_embeddings=bool(d.get("tie_word_embeddings", False)),
        )
    except KeyError as e:
        raise ValueError(f"config lacks {e.args[0]!r}; the planner needs a Llama-layout decoder config") from None


@dataclass
class PlanConfig:
    """One training setup to estimate (defaults: the paper's 7B recipe on one GPU, §4.1)."""

    mode: str = "lora"  # full | lora | qlora
    seq_len: int = 4096  # T: tokens per training sequence (E²: R = 4K; PI: L′)
    micro_batch: int = 1  # sequences per forward (global batch via gradient accumulation)
    global_batch: int = 16  # sequences per optimizer step (paper: 16)
    gradient_checkpointing: bool = True  # one checkpoint per decoder layer
    param_bytes: int = 2  # bytes per weight and activation: 2 = bf16, 4 = float32
    optimizer: str | None = None  # adamw | adamw8bit | paged_adamw8bit; None = paged 8-bit for full, adamw else
    lora_r: int = 8  # LoRA rank
    lora_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")  # attention projections
    train_embed_norm: bool = False  # LongLoRA's "embed,norm": also train embeddings and RMSNorms
    double_quant: bool = True  # QLoRA double quantisation of the absmax constants
    gpu: str = "a100-80gb"  # key of GPUS (peak FLOP/s, memory)
    utilization: float | None = None  # assumed hardware-FLOPs utilisation; None = 0.40 (0.28 QLoRA)
    num_processes: int = 1  # data-parallel GPUs (global batch = micro_batch × accumulation × N)
    sharding: str = "ddp"  # ddp (replicate) | zero2 (shard grads + optimizer) | zero3, fsdp (+ weights)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; valid modes: {', '.join(MODES)}")
        for name in ("seq_len", "micro_batch", "global_batch", "lora_r", "num_processes"):
            v = getattr(self, name)
            object.__setattr__(self, name, check_int(name, v, 1))
        if self.global_batch % (self.micro_batch * self.num_processes):
            raise ValueError(
                f"global_batch={self.global_batch} must be a multiple of micro_batch={self.micro_batch} × "
                f"num_processes={self.num_processes} (gradient accumulation steps = global_batch / that product)"
            )
        if self.sharding not in ("ddp", "zero2", "zero3", "fsdp"):
            raise ValueError(f"unknown sharding {self.sharding!r}; valid: ddp, zero2, zero3, fsdp")
        if self.param_bytes not in (2, 4):
            raise ValueError(f"param_bytes must be 2 (bf16) or 4 (float32), got {self.param_bytes!r}")
        if self.optimizer is not None and self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; valid: {', '.join(OPTIMIZERS)}")
        if self.gpu not in GPUS:
            raise ValueError(f"unknown gpu {self.gpu!r}; valid: {', '.join(GPUS)}")
        if self.utilization is not None and not 0 < self.utilization <= 1:
            raise ValueError(f"utilization must be in (0, 1], got {self.utilization!r}")
        self.lora_targets = tuple(self.lora_targets)

    @property
    def optimizer_name(self) -> str:
        return self.optimizer or ("paged_adamw8bit" if self.mode == "full" else "adamw")

    @property
    def assumed_utilization(self) -> float:
        return self.utilization if self.utilization is not None else (0.28 if self.mode == "qlora" else 0.40)


@dataclass
class Estimate:
    """Peak memory by component (bytes) and throughput of one :class:`PlanConfig`."""

    weights: int  # model weights on the device
    gradients: int  # gradients of trainable parameters (kept across accumulation micro-steps)
    optimizer: int  # AdamW m and v of trainable parameters
    activations: int  # tensors saved for backward (+ one rebuilt layer under checkpointing)
    logits: int  # T·V terms of the loss: logits, float32 copy, log-softmax, its gradient
    trainable_params: int  # parameters the optimizer updates
    flops_per_token: float  # hardware FLOPs per trained token (incl. recomputation)
    model_flops_per_token: float  # 6·N_mm + 6·n·h·T: the MFU numerator
    tokens_per_s: float  # at the assumed utilisation
    mfu: float  # model FLOPs utilisation implied by tokens_per_s
    extra: dict = field(default_factory=dict)  # the config it was made for

    @property
    def total(self) -> int:
        """Peak = static + activations + logits (steady state: gradients persist across micro-batches)."""
        return self.weights + self.gradients + self.optimizer + self.activations + self.logits

    def to_dict(self) -> dict:
        d = asdict(self)
        d["total"] = self.total
        return d


def lora_params(shape: ModelShape, r: int, targets=("q_proj", "k_proj", "v_proj", "o_proj")) -> int:
    """Adapter parameters: ``r·(d_in + d_out)`` per adapted projection and layer (A: r×d_in, B: d_out×r)."""
    h, k, I = shape.hidden_size, shape.kv_dim, shape.intermediate_size
    dims = {"q_proj": (h, h), "k_proj": (h, k), "v_proj": (h, k), "o_proj": (h, h),
            "gate_proj": (h, I), "up_proj": (h, I), "down_proj": (I, h)}
    bad = [t for t in targets if t not in dims]
    if bad:
        raise ValueError(f"unknown LoRA target {bad[0]!r}; valid: {', '.join(dims)}")
    return shape.num_layers * sum(r * (dims[t][0] + dims[t][1]) for t in targets)


def layer_activation_bytes(shape: ModelShape, a: int, mode: str, lora_r: int = 8, n_lora: int = 4) -> int:
    """Bytes per token that one decoder layer saves for backward (module docstring; measured on CPU)."""
    h, k, I = shape.hidden_size, shape.kv_dim, shape.intermediate_size
    stats = 4 * (shape.num_heads + 2)  # float32 log-sum-exp per head + two RMSNorm variances
    upcast = 4 * h if a == 2 else 0  # RMSNorm computes in float32
    if mode == "full":
        return a * (8 * h + 2 * k + 4 * I) + stats + upcast
    # lora / qlora: frozen projections keep no copy of their input for a weight gradient
    cast = 7 * h if a == 2 else 0  # peft feeds the float32 adapters a float32 copy of their input
    return a * (5 * h + 2 * k + 3 * I + lora_r * n_lora) + stats + upcast + cast


def outside_activation_bytes(shape: ModelShape, a: int, mode: str, seq_len: int, micro_batch: int) -> int:
    """Bytes saved outside the decoder layers for one micro-batch (not counting the loss's T·V terms).

    Full fine-tuning keeps the final norm's input and output and the lm_head's input (``3h``); with a
    frozen head (LoRA) none of them. The rotary cos/sin tables (``2·head_dim`` per position) are shared
    by the batch.
    """
    head_dim = shape.hidden_size // shape.num_heads
    per_token = (a * 3 * shape.hidden_size + (2 * shape.hidden_size if a == 2 else 0) + 20) if mode == "full" else 8
    return micro_batch * seq_len * per_token + seq_len * 2 * head_dim * a


def estimate(model, cfg: PlanConfig | None = None, **overrides) -> Estimate:
    """Estimate peak memory and tokens/s of fine-tuning ``model`` (anything :func:`shape_of` takes)."""
    s = shape_of(model)
    cfg = replace(cfg, **overrides) if cfg is not None else PlanConfig(**overrides)
    a, T, B = cfg.param_bytes, cfg.seq_len, cfg.micro_batch
    N, h, V, n = s.n_params, s.hidden_size, s.vocab_size, s.num_layers

    # 1) weights
    if cfg.mode == "qlora":
        n_quant = n * s.layer_linear  # decoder projections -> NF4; embeddings, lm_head, norms stay 16-bit
        const = (1 / 64 + 4 / (64 * 256)) if cfg.double_quant else 4 / 64  # absmax per 64-block
        weights = int(n_quant * (0.5 + const)) + (N - n_quant) * 2
    else:
        weights = N * a
    # 2) trainable parameters, their gradients and optimizer states
    eight_bit = cfg.optimizer_name in ("adamw8bit", "paged_adamw8bit")
    state_bytes = (lambda dtype_bytes: 2 * (1 + 4 / 256)) if eight_bit else (lambda dtype_bytes: 2 * dtype_bytes)
    if cfg.mode == "full":
        trainable, grads, opt = N, N * a, int(N * state_bytes(a))
    else:
        n_lora = lora_params(s, cfg.lora_r, cfg.lora_targets)
        trainable, grads, opt = n_lora, n_lora * 4, int(n_lora * state_bytes(4))  # adapters in float32
        if cfg.train_embed_norm:  # LongLoRA: embeddings and norms train in the weights' dtype
            extra = s.n_embed + s.n_norm
            trainable += extra
            grads += extra * 2
            opt += int(extra * state_bytes(2))
    # 2b) data parallelism over N GPUs: ZeRO-2 shards gradients and optimizer states, ZeRO-3 / FSDP
    #     (FULL_SHARD) the weights too, gathering one decoder layer's weights at a time
    Np = cfg.num_processes
    if cfg.sharding != "ddp" and Np > 1:
        grads, opt = -(-grads // Np), -(-opt // Np)
        if cfg.sharding in ("zero3", "fsdp"):
            weights = -(-weights // Np) + s.layer_linear * a
    # 3) activations (bytes, linear in T with SDPA / FlashAttention)
    per_layer = layer_activation_bytes(s, a, cfg.mode, cfg.lora_r, len(cfg.lora_targets))
    outside = outside_activation_bytes(s, a, cfg.mode, T, B)
    if cfg.gradient_checkpointing:
        acts = B * T * (n * a * h + per_layer) + outside  # layer inputs + one layer rebuilt in backward
    else:
        acts = B * T * n * per_layer + outside
    logits = B * T * V * (a + (4 if a == 2 else 0) + 4 + 4)
    # 4) time
    n_mm = s.n_matmul
    att_fwd = 2 * n * h * T  # causal: QK^T and PV over T/2 keys on average, 2 FLOPs per MAC
    fwd = 2 * n_mm + att_fwd
    bwd = (4 * n_mm if cfg.mode == "full" else 2 * n_mm) + 2 * att_fwd
    hw = fwd + bwd + (fwd if cfg.gradient_checkpointing else 0)
    model_flops = 6 * n_mm + 3 * att_fwd
    peak, _ = GPUS[cfg.gpu]
    tps = cfg.assumed_utilization * peak / hw
    return Estimate(
        weights=int(weights), gradients=int(grads), optimizer=int(opt), activations=int(acts), logits=int(logits),
        trainable_params=int(trainable), flops_per_token=float(hw), model_flops_per_token=float(model_flops),
        tokens_per_s=float(tps), mfu=float(tps * model_flops / peak),
        extra={**asdict(cfg), "optimizer": cfg.optimizer_name, "utilization": cfg.assumed_utilization},
    )


# --- the paper's Fig. 1 as numbers ------------------------------------------------------------


def fig1_rows(model="llama-2-7b", cfg: PlanConfig | None = None, e2_len: int = 4096,
              pi_lens=(16384, 32768, 65536), steps: int = 1000) -> list[dict]:
    """E² at ``e2_len`` (one run serves every window) vs PI at each of ``pi_lens`` (one run per window).

    Same optimizer steps and global batch (sequences) for every row, as the paper trains both with
    global batch 16; PI's sequences are ``L′`` tokens long, so a PI step costs ``L′/R`` times the tokens.
    """
    cfg = cfg or PlanConfig()
    gpu_mem = GPUS[cfg.gpu][1]
    rows = []
    for name, T, serves in [("E2", e2_len, [int(x) for x in pi_lens])] + [("PI", L, [int(L)]) for L in pi_lens]:
        est = estimate(model, cfg, seq_len=int(T))
        tokens_per_step = cfg.global_batch * T
        s_per_step = tokens_per_step / est.tokens_per_s
        rows.append({
            "method": name, "train_len": int(T), "serves": serves, "mode": cfg.mode,
            "peak_gib": est.total / GiB, "weights_gib": est.weights / GiB,
            "grads_opt_gib": (est.gradients + est.optimizer) / GiB,
            "activations_gib": (est.activations + est.logits) / GiB,
            "fits": bool(est.total <= gpu_mem), "tokens_per_s": est.tokens_per_s, "mfu": est.mfu,
            "s_per_step": s_per_step, "gpu_hours": s_per_step * steps / 3600, "steps": int(steps),
        })
    return rows


def _fmt_len(T: int) -> str:
    return f"{T // 1024}K" if T % 1024 == 0 else str(T)


def to_markdown(rows: list[dict], cfg: PlanConfig | None = None) -> str:
    """The Fig. 1 rows as a markdown table plus the cost of serving every PI window."""
    cfg = cfg or PlanConfig()
    lines = [
        "| method | train length | serves | peak GiB | weights | grads+optim | activations | "
        f"fits {cfg.gpu} | tokens/s | s/step | GPU-h / {rows[0]['steps']} steps |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        serves = ", ".join(_fmt_len(x) for x in r["serves"])
        lines.append(
            f"| {'E²' if r['method'] == 'E2' else r['method']} | {_fmt_len(r['train_len'])} | {serves} | {r['peak_gib']:.1f} | {r['weights_gib']:.1f} | "
            f"{r['grads_opt_gib']:.1f} | {r['activations_gib']:.1f} | {'yes' if r['fits'] else 'no'} | "
            f"{r['tokens_per_s']:,.0f} | {r['s_per_step']:.1f} | {r['gpu_hours']:.1f} |"
        )
    e2 = sum(r["gpu_hours"] for r in rows if r["method"] == "E2")
    pi = sum(r["gpu_hours"] for r in rows if r["method"] == "PI")
    lines.append("")
    lines.append(f"To serve {', '.join(_fmt_len(x) for x in rows[0]['serves'])}: E² one run, {e2:.1f} GPU-h; "
                 f"PI one run per window, {pi:.1f} GPU-h ({pi / e2:.1f}×). Equal steps and global batch of "
                 f"sequences; a PI step holds L′/R times the tokens. tokens/s at an assumed utilisation.")
    return "\n".join(lines)


def plot_fig1(rows: list[dict], path: str | os.PathLike | None = None, cfg: PlanConfig | None = None):
    """Two panels: peak memory per run (with the GPU's memory) and GPU-hours to serve every window.

    Returns ``(fig, axes)``; saves a PNG to ``path`` when given.
    """
    import matplotlib.pyplot as plt

    cfg = cfg or PlanConfig()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4))
    labels = [f"{'E²' if r['method'] == 'E2' else 'PI'} @{_fmt_len(r['train_len'])}" for r in rows]
    colors = ["tab:green" if r["method"] == "E2" else "tab:gray" for r in rows]
    ax1.bar(labels, [r["peak_gib"] for r in rows], color=colors)
    mem = GPUS[cfg.gpu][1] / GiB
    ax1.axhline(mem, color="tab:red", ls="--", lw=1)
    top = max([mem] + [r["peak_gib"] for r in rows])
    ax1.set_ylim(0, top * 1.15)  # room above the line for its label
    ax1.text(0.99, mem, f"{cfg.gpu} ", color="tab:red", va="bottom", ha="right", fontsize=8,
             transform=ax1.get_yaxis_transform())
    ax1.set_ylabel("peak memory per run (GiB)")
    ax1.set_title(f"{cfg.mode}, checkpointing={'on' if cfg.gradient_checkpointing else 'off'}", fontsize=9)
    # right: E² one bar; PI stacked, one run per window
    e2 = [r for r in rows if r["method"] == "E2"]
    pi = [r for r in rows if r["method"] == "PI"]
    ax2.bar(["E² (one run)"], [sum(r["gpu_hours"] for r in e2)], color="tab:green")
    bottom = 0.0
    shades = ["#bbbbbb", "#888888", "#555555", "#333333"]
    for i, r in enumerate(pi):
        ax2.bar(["PI (one run per window)"], [r["gpu_hours"]], bottom=bottom, color=shades[i % len(shades)],
                label=f"PI @{_fmt_len(r['train_len'])}")
        bottom += r["gpu_hours"]
    ax2.set_ylabel(f"GPU-hours, {rows[0]['steps']} steps each")
    ax2.set_title(f"to serve {', '.join(_fmt_len(x) for x in rows[0]['serves'])} ({cfg.gpu}, estimate)", fontsize=9)
    ax2.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig, (ax1, ax2)


# --- CLI: e2llm-lite plan -----------------------------------------------------------------------


def check_model(text: str) -> str:
    """``--model`` of ``e2llm-lite plan``: a preset or a known Hub id, or — checked by
    :func:`e2llm_lite.pretrained.check_model`, as every command checks ``--model`` — a registered name, a
    local folder with config.json or a config.json file. Nothing is downloaded or converted."""
    from e2llm_lite import pretrained

    if text in PRESETS or text in HUB_IDS:
        return text
    valid = (f"a preset ({', '.join(PRESETS)}), a known Hub id ({', '.join(HUB_IDS)}), a registered name "
             f"({', '.join(sorted(pretrained.REGISTRY))}), a local model folder or a config.json file")
    if text not in pretrained.REGISTRY and local_path("--model", text, valid=valid) is None:
        raise ValueError(f"--model {text!r} is not a preset, a known Hub id or a registered name (the planner "
                         f"reads shapes, it downloads nothing); valid: {valid}")
    return pretrained.check_model(text, "--model", files=(".json",), files_note="a config.json file")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="llama-2-7b",
                   help=f"preset ({', '.join(PRESETS)}), known Hub id, registered name (smollm2-135m), or a local "
                        f"folder / config.json")
    p.add_argument("--mode", default="lora", help=f"one of {', '.join(MODES)}")
    p.add_argument("--seq-len", type=int_arg("--seq-len", 1), default=4096, help="E²'s training length R (default 4096)")
    p.add_argument("--pi-lens", type=int_list_arg("--pi-lens", 1), default=[16384, 32768, 65536],
                   help="PI's training windows L′, comma-separated")
    p.add_argument("--micro-batch", type=int_arg("--micro-batch", 1), default=1)
    p.add_argument("--global-batch", type=int_arg("--global-batch", 1), default=16)
    p.add_argument("--num-processes", type=int_arg("--num-processes", 1), default=1,
                   help="data-parallel GPUs (memory is per GPU)")
    p.add_argument("--sharding", choices=("ddp", "zero2", "zero3", "fsdp"), default="ddp",
                   help="ddp | zero2 | zero3 | fsdp (how N GPUs split the state)")
    p.add_argument("--no-checkpointing", action="store_true", help="estimate without gradient checkpointing")
    p.add_argument("--float32", action="store_true", help="float32 weights/activations instead of bf16")
    p.add_argument("--optimizer", choices=list(OPTIMIZERS), default=None,
                   help=f"one of {', '.join(OPTIMIZERS)} (default by mode)")
    p.add_argument("--lora-r", type=int_arg("--lora-r", 1), default=8)
    p.add_argument("--train-embed-norm", action="store_true", help="LongLoRA: also train embeddings and norms")
    p.add_argument("--gpu", choices=list(GPUS), default="a100-80gb", help=f"one of {', '.join(GPUS)}")
    p.add_argument("--utilization", type=float_arg("--utilization", 0, 1, lo_open=True), default=None,
                   help="assumed FLOPs utilisation, in (0, 1] (default 0.40)")
    p.add_argument("--steps", type=int_arg("--steps", 1), default=1000, help="optimizer steps per run for the GPU-hours column")
    p.add_argument("--out", type=out_file_arg("--out"), default="figures/fig1_cost",
                   help="writes OUT.md, OUT.json and OUT.png")
    p.add_argument("--no-plot", action="store_true")


def run(args) -> int:
    check_model(args.model)  # first: the same check as train, eval and reproduce
    pi_lens = tuple(args.pi_lens) if not isinstance(args.pi_lens, str) else tuple(int_list_arg("--pi-lens", 1)(args.pi_lens))
    cfg = PlanConfig(
        mode=args.mode, seq_len=args.seq_len, micro_batch=args.micro_batch, global_batch=args.global_batch,
        num_processes=args.num_processes, sharding=args.sharding,
        gradient_checkpointing=not args.no_checkpointing, param_bytes=4 if args.float32 else 2,
        optimizer=args.optimizer, lora_r=args.lora_r, train_embed_norm=args.train_embed_norm, gpu=args.gpu,
        utilization=args.utilization,
    )
    from e2llm_lite import pretrained

    # a registered name: its config (shape) without converting the model
    shape = shape_of(pretrained.registered_config(args.model) if args.model in pretrained.REGISTRY else args.model)
    rows = fig1_rows(shape, cfg, e2_len=args.seq_len, pi_lens=pi_lens, steps=args.steps)
    md = to_markdown(rows, cfg)
    print(f"model {args.model}: N = {shape.n_params:,} parameters; {cfg.mode}, "
          f"{cfg.optimizer_name}, global batch {cfg.global_batch}, utilisation {cfg.assumed_utilization} (assumed)")
    print(md)
    out = Path(args.out)
    save_json({"model": str(args.model), "config": {**asdict(cfg), "optimizer": cfg.optimizer_name},
               "assumed_utilization": cfg.assumed_utilization, "rows": rows}, out.with_suffix(".json"))
    atomic_write(out.with_suffix(".md"), md + "\n")
    if not args.no_plot:
        import matplotlib

        matplotlib.use("Agg")
        fig, _ = plot_fig1(rows, out.with_suffix(".png"), cfg)
        import matplotlib.pyplot as plt

        plt.close(fig)
    print(f"wrote {out.with_suffix('.md')}, {out.with_suffix('.json')}" + ("" if args.no_plot else f", {out.with_suffix('.png')}"))
    return 0
