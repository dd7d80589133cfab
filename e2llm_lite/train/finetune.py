r"""``e2llm-lite train``: E² fine-tuning of a Hub model or local checkpoint — one entry point for the CLI
and notebook 03.

:func:`finetune` runs the paper's recipe (§4.1, Algorithm 1) end to end:

1. load the model in mode ``full | lora | qlora`` (:mod:`e2llm_lite.train.loading`);
2. tokenize a corpus with the model's tokenizer and pack it into windows of R tokens;
3. train with the project's loop (:func:`e2llm_lite.train.loop.train`: E² draws of ``(g, t)``, warm-up,
   gradient accumulation to the global batch, clipping, atomic safetensors checkpoints and exact
   resume from ``out_dir/checkpoints``);
4. export adapters and a merged model whose config carries ``rope_type="linear", factor=g`` (or the
   ``rope_parameters`` of the run's scale family, below).

**Scale family.** ``--family linear`` (default, the paper: positions ``m/g``, Eq. 4) applies every drawn
``g`` by dividing the RoPE frequencies; ``ntk`` and ``yarn`` apply the same draws of ``(g, t)`` with
those frequency rules (:mod:`e2llm_lite.scaling`, YaRN's original window = the model's ``L``). The
family is stored in ``run.json`` and the merged export's config carries its ``rope_type``
(:func:`e2llm_lite.hf.save_for_scale`). ``ntk`` / ``yarn`` need a base model with
``rope_type="default"``. ``--scheme pi`` with any family trains at the one scale ``--fixed-scale``.

Defaults are the paper's 7B setting: R = 4096, G_max = 20, 4 sinks, AdamW β = (0.9, 0.95), lr 1e-5,
global batch 16; on a GPU bf16, gradient checkpointing and FlashAttention-2 (else SDPA).

**Data.** ``--data stdlib`` (the CPython standard library, offline), a local text file or folder
(random windows from the packed stream, :class:`e2llm_lite.data.PackedWindows`), or — read with
``datasets`` and ``streaming=True`` — a local ``.jsonl`` file (one ``{"text": …}`` per line) or a
Hugging Face ``datasets`` name (:class:`StreamWindows`: consecutive windows in
stream order, so batch ``i`` is always the same tokens and a resumed run skips to it). The paper's
mix (Pile + ShareGPT + long summarisation) is a recipe in ``docs/recipes.md``.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from e2llm_lite import data as data_mod
from e2llm_lite.train import loading as modes
from e2llm_lite.augment import SCHEMES, AugmentConfig
from e2llm_lite.scaling import FAMILIES, check_family
from e2llm_lite.train.distributed import plan_layout, shards_weights
from e2llm_lite.train.loop import TrainConfig, _find_checkpoint, train
from e2llm_lite.atomic_files import save_json
from e2llm_lite import pretrained
from e2llm_lite.optional import require
from e2llm_lite.validation import (check_int, device_arg, float_arg, int_arg, local_path, out_folder_arg, path_arg,
                                   tokenizer_arg)

__all__ = ["FinetuneConfig", "StreamWindows", "load_tokenizer_for", "build_data", "finetune", "add_arguments", "run"]


@dataclass
class FinetuneConfig:
    """One fine-tuning run. Defaults: the paper's Llama-2-7B recipe (§4.1) on one GPU."""

    model: str = "meta-llama/Llama-2-7b-hf"  # Hub id, local folder (safetensors) or registered name (smollm2-135m)
    mode: str = "lora"  # full | lora | qlora
    scheme: str = "e2"  # augment.SCHEMES: e2, pi, none, e2-no-offset, e2-fixed-scale
    family: str = "linear"  # scaling.FAMILIES: how each g moves the RoPE frequencies (linear = the paper)
    data: str = "stdlib"  # "stdlib", a local text file/folder, a .jsonl file or a `datasets` name (streamed)
    data_config: str | None = None  # `datasets` config name (e.g. "en")
    text_field: str = "text"  # column with the text in a `datasets` set
    file_exts: tuple[str, ...] | None = (".py", ".txt", ".md")  # which files of a local folder; None = all
    max_docs: int | None = None  # cap on documents read (local corpora)
    tokenizer: str | None = None  # None = the model's own; "bytes" | "bpe" | JSON path = data.py tokenizers
    seq_len: int = 4096  # R: tokens per training window
    g_max: int = 20  # G_max (paper: 20)
    n_sink: int = 4  # attention sinks that keep offset 0 (paper: 4)
    fixed_scale: int | None = None  # g for `pi` / `e2-fixed-scale`
    steps: int = 1000  # optimizer steps (paper: 30,000)
    lr: float = 1e-5  # paper: 1e-5
    warmup_steps: int = 20  # linear warm-up
    schedule: str = "constant"  # constant | cosine
    global_batch: int = 16  # sequences per optimizer step (paper: 16)
    micro_batch: int = 1  # sequences per forward; grad_accum = global_batch / micro_batch
    max_grad_norm: float | None = 1.0
    seed: int = 0  # seeds (g, t) draws and data windows
    gradient_checkpointing: bool | None = None  # None = on for a GPU, off on a CPU
    optimizer: str | None = None  # adamw | adamw8bit | paged_adamw8bit; None = paged 8-bit for full on GPU
    lora_r: int = 8
    lora_alpha: int = 16
    train_embed_norm: bool = False  # LongLoRA's embed+norm
    dtype: str | None = None  # None = bfloat16 on GPU, float32 on CPU
    attn_implementation: str | None = None  # None = flash_attention_2 if usable, else sdpa
    device: str | None = None
    trust_remote_code: bool = False  # never by default
    out_dir: str = "runs/finetune"  # checkpoints/, export/, run.json
    checkpoint_every: int = 0  # steps between checkpoints (0 = only at the end)
    export_g: int | None = 4  # g of the exported merged model (serves g·L); None = no export
    progress: bool = True  # tqdm bar
    extra: dict = field(default_factory=dict)  # more from_pretrained kwargs

    def __post_init__(self) -> None:
        if self.mode not in modes.MODES:
            raise ValueError(f"unknown mode {self.mode!r}; valid modes: {', '.join(modes.MODES)}")
        if self.scheme not in SCHEMES:
            hint = (f"; {self.scheme!r} is a scale family: family={self.scheme!r} (--family {self.scheme})"
                    if self.scheme in FAMILIES else "")
            raise ValueError(f"unknown scheme {self.scheme!r}; valid: {', '.join(sorted(SCHEMES))}{hint}")
        check_family(self.family)
        for name in ("seq_len", "global_batch", "micro_batch", "g_max"):
            v = getattr(self, name)
            object.__setattr__(self, name, check_int(name, v, 1))
        if self.seq_len < 2:
            raise ValueError(f"seq_len R must be >= 2 tokens, got {self.seq_len}")
        object.__setattr__(self, "n_sink", check_int("n_sink", self.n_sink, 0, self.seq_len - 1,
                                                     note=f"below R = seq_len = {self.seq_len}"))
        if self.global_batch % self.micro_batch:
            raise ValueError(
                f"global_batch={self.global_batch} is not a multiple of micro_batch={self.micro_batch}; valid "
                f"micro_batch values divide {self.global_batch}: "
                f"{[d for d in range(1, self.global_batch + 1) if self.global_batch % d == 0]}"
            )
        if self.optimizer is not None and self.optimizer not in modes.OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; valid: {', '.join(modes.OPTIMIZERS)}")
        if self.export_g is not None:
            object.__setattr__(self, "export_g", check_int("export_g", self.export_g, 1))


# --- tokenizers and data ------------------------------------------------------------------------------


class _HFTokenizer:
    """A ``transformers`` tokenizer seen through data.py's small interface (no BOS/EOS added per text)."""

    name = "hf"

    def __init__(self, tok) -> None:
        self.tok = tok
        self.eos_id = tok.eos_token_id
        self.vocab_size = len(tok)

    def encode(self, text: str) -> list[int]:
        return list(self.tok(text, add_special_tokens=False)["input_ids"])

    def encode_batch(self, texts) -> list[list[int]]:
        return [list(x) for x in self.tok(list(texts), add_special_tokens=False)["input_ids"]]

    def decode(self, ids) -> str:
        return self.tok.decode([int(i) for i in ids])

    def save_pretrained(self, path) -> None:
        self.tok.save_pretrained(path)


def load_tokenizer_for(model_path: str, name: str | None = None, trust_remote_code: bool = False):
    """The tokenizer: ``name`` from data.py, else the model's own, else the note :func:`modes.export` left."""
    if name is not None:
        return data_mod.load_tokenizer(name)
    note = Path(model_path) / "e2llm_tokenizer_kind.json"
    if note.is_file():
        json_path = Path(model_path) / "e2llm_tokenizer.json"
        return data_mod.tokenizer_from_dict(json.loads(note.read_text()), json_path if json_path.is_file() else None)
    import transformers

    try:
        tok = transformers.AutoTokenizer.from_pretrained(model_path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        raise ValueError(
            f"no tokenizer found for {model_path!r} ({type(e).__name__}); pass tokenizer='bytes', 'bpe' or a "
            f"tokenizer JSON path"
        ) from None
    return _HFTokenizer(tok)


class StreamWindows:
    """Consecutive ``R``-token windows from a streamed text set; ``get_batch(i)`` = windows ``i·B … i·B+B−1``.

    Documents are tokenized in stream order and joined with the end-of-text id. Only the current
    window position is kept: asking for an earlier batch restarts the stream, so any index (e.g. the
    one a resumed run starts at) gives the same tokens — exact resume without storing the data.
    ``position`` is the number of windows produced so far (the data position).
    """

    def __init__(self, make_iter, tokenizer, seq_len: int, batch_size: int, text_field: str = "text") -> None:
        self.make_iter, self.tok, self.text_field = make_iter, tokenizer, text_field
        self.seq_len, self.batch_size = int(seq_len), int(batch_size)
        self._restart()

    def _restart(self) -> None:
        self._it = iter(self.make_iter())
        self._buf: list[int] = []
        self.position = 0  # windows produced so far

    def _next_window(self) -> torch.Tensor:
        while len(self._buf) < self.seq_len:
            try:
                row = next(self._it)
            except StopIteration:
                raise ValueError(
                    f"the text stream ran out after {self.position} windows of {self.seq_len} tokens; "
                    f"use fewer steps or more data"
                ) from None
            text = row[self.text_field] if isinstance(row, dict) else str(row)
            self._buf.extend(self.tok.encode(text))
            if self.tok.eos_id is not None:
                self._buf.append(int(self.tok.eos_id))
        win, self._buf = self._buf[: self.seq_len], self._buf[self.seq_len :]
        self.position += 1
        return torch.tensor(win, dtype=torch.int64)

    def get_batch(self, index: int) -> torch.Tensor:
        """(B, R) int64 windows of batch ``index``."""
        if index < 0:
            raise ValueError(f"batch index must be >= 0, got {index}")
        first = index * self.batch_size
        if first < self.position:
            self._restart()
        while self.position < first:
            self._next_window()
        return torch.stack([self._next_window() for _ in range(self.batch_size)])  # (B, R)


def build_data(cfg: FinetuneConfig, tokenizer, rows: int | None = None):
    """Training batches for ``cfg.data`` (see module docstring): ``rows`` windows per batch index (default
    ``micro_batch``; under N processes the global micro-batch ``micro_batch × N``, of which each takes its share)."""
    src, rows = cfg.data, rows or cfg.micro_batch
    is_jsonl = Path(src).is_file() and src.endswith((".jsonl", ".json", ".jsonl.gz", ".json.gz"))
    if not is_jsonl and (src == "stdlib" or Path(src).exists()):
        corpus = data_mod.load_corpus(None if src == "stdlib" else src, split="train",
                                      exts=(".py",) if src == "stdlib" else cfg.file_exts, max_docs=cfg.max_docs)
        docs = data_mod.encode_docs(tokenizer, corpus.docs)
        return data_mod.PackedWindows(docs, cfg.seq_len, rows, seed=cfg.seed, eos_id=tokenizer.eos_id)
    local_path("--data", src)  # written as a path that does not exist: FileNotFoundError, no `datasets` lookup
    datasets = require("datasets", extra="train", purpose=f"reading data {src!r} (a .jsonl file or a datasets name)")

    def make_iter():
        if is_jsonl:  # one JSON object per line with a `text_field` (e.g. the mix of docs/recipes.md)
            return datasets.load_dataset("json", data_files=src, split="train", streaming=True)
        return datasets.load_dataset(src, cfg.data_config, split="train", streaming=True)

    return StreamWindows(make_iter, tokenizer, cfg.seq_len, rows, cfg.text_field)


# --- the entry point ---------------------------------------------------------------------------------


def finetune(cfg: FinetuneConfig) -> dict:
    """Run steps 1–4 of the module docstring; returns model, tokenizer, train result, export paths, summary."""
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)  # LoRA's A matrices are drawn from torch's global RNG: same seed, same run
    # 0) processes: launched by torchrun / accelerate launch (WORLD_SIZE), global batch = micro × accum × N
    world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    layout = plan_layout(cfg.global_batch, world, cfg.micro_batch)
    if cfg.export_g is not None and shards_weights():
        raise ValueError(f"export_g={cfg.export_g} needs the whole model in one process, but the accelerate config shards "
                         f"the weights (FSDP / ZeRO-3); pass --export-g 0 and export from the merged checkpoint")
    _check_resume_family(Path(cfg.out_dir) / "checkpoints", cfg.family)
    dev = cfg.device
    if dev is None and world > 1 and torch.cuda.is_available():
        dev = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"  # each process loads onto its own GPU
    # 1) model in its mode
    mcfg = modes.ModeConfig(
        mode=cfg.mode, dtype=cfg.dtype, attn_implementation=cfg.attn_implementation, device=dev,
        lora_r=cfg.lora_r, lora_alpha=cfg.lora_alpha, train_embed_norm=cfg.train_embed_norm,
        trust_remote_code=cfg.trust_remote_code, extra=dict(cfg.extra),
    )
    source = pretrained.resolve_model(cfg.model)  # a registered name (smollm2-135m) -> its converted plain folder
    model = modes.load_model(source, mcfg)
    device = next(model.parameters()).device
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    L = int(base.config.max_position_embeddings)
    # 2) data
    tok = load_tokenizer_for(source, cfg.tokenizer, cfg.trust_remote_code)
    vocab = int(base.config.vocab_size)
    if tok.vocab_size > vocab:
        raise ValueError(f"tokenizer has {tok.vocab_size} ids but the model's vocab_size is {vocab}; pick a matching tokenizer")
    batches = build_data(cfg, tok, rows=cfg.micro_batch * world)
    # 3) train (Algorithm 1)
    aug = AugmentConfig(base_window=L, train_len=cfg.seq_len, g_max=cfg.g_max, n_sink=cfg.n_sink,
                        fixed_scale=cfg.fixed_scale, family=cfg.family)
    on_gpu = device.type == "cuda"
    opt_name = cfg.optimizer or ("paged_adamw8bit" if cfg.mode == "full" and on_gpu else "adamw")
    tcfg = TrainConfig(
        steps=cfg.steps, lr=cfg.lr, warmup_steps=cfg.warmup_steps, schedule=cfg.schedule,
        batch_size=cfg.micro_batch, grad_accum=layout.grad_accum, max_grad_norm=cfg.max_grad_norm,
        seed=cfg.seed, scheme=cfg.scheme, augment=aug,
        gradient_checkpointing=on_gpu if cfg.gradient_checkpointing is None else cfg.gradient_checkpointing,
        autocast_dtype="bfloat16" if on_gpu else None,  # bf16 matmuls (float32 adapters or --dtype float32)
        checkpoint_dir=str(Path(cfg.out_dir) / "checkpoints"), checkpoint_every=cfg.checkpoint_every,
    )
    opt = modes.optimizer_factory(opt_name, lr=cfg.lr, betas=tcfg.betas, weight_decay=tcfg.weight_decay)
    result = train(model, batches, tcfg, optimizer_factory=opt, progress=cfg.progress)
    counts = modes.trainable_summary(model)
    # 4) export
    exported = None
    if rank != 0:  # one process exports and writes the record; the others hold the same weights (DDP)
        return {"model": model, "tokenizer": tok, "result": result, "export": None, "summary": None}
    if cfg.export_g is not None:
        exported = modes.export(model, Path(cfg.out_dir) / "export", g=cfg.export_g, tokenizer=tok,
                                base_model_path=source, cfg=mcfg, family=cfg.family, base_window=L)
    summary = {
        "model": cfg.model, "mode": cfg.mode, "scheme": cfg.scheme, "family": cfg.family,
        "device": str(device), "base_window": L,
        "optimizer": opt_name, "attn_implementation": str(base.config._attn_implementation),
        "steps": result.step, "resumed_from": result.resumed_from, "final_loss": result.final_loss,
        "data_windows_used": result.step * layout.global_batch,  # batch index i -> same windows
        "layout": layout.describe(), "num_processes": world,
        "tokens_per_s": (sum(r["tokens_per_s"] for r in result.history[result.resumed_from:]) /
                         max(1, len(result.history) - result.resumed_from)),
        **counts,
        "export": {k: v for k, v in (exported or {}).items() if k != "model"},
        "config": {k: v for k, v in asdict(cfg).items()}, "elapsed_s": time.perf_counter() - t0,
    }
    save_json(summary, Path(cfg.out_dir) / "run.json")
    return {"model": exported["model"] if exported else model, "tokenizer": tok, "result": result,
            "export": exported, "summary": summary}


def _check_resume_family(checkpoint_dir: Path, family: str) -> None:
    """ValueError when ``checkpoint_dir`` holds a run trained with another scale family (resume would mix them)."""
    found = _find_checkpoint(checkpoint_dir)
    if found is None:
        return
    saved = torch.load(found / "state.pt", weights_only=True).get("config", {}).get("augment", {})
    old = saved.get("family", "linear")  # checkpoints from before families existed trained linear
    if old != family:
        raise ValueError(f"{checkpoint_dir} holds a run trained with family={old!r}, but family={family!r} was asked; "
                         f"pass --family {old} to resume it, or another --out-dir for a new run")


# --- CLI -------------------------------------------------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = FinetuneConfig()
    p.add_argument("--model", default=d.model,
                   help=f"Hub id, local folder (safetensors) or a registered name ({', '.join(sorted(pretrained.REGISTRY))})")
    p.add_argument("--mode", default=d.mode, help=f"one of {', '.join(modes.MODES)}")
    p.add_argument("--scheme", default=d.scheme, help=f"one of {', '.join(sorted(SCHEMES))}")
    p.add_argument("--family", choices=list(FAMILIES), default=d.family,
                   help="RoPE scale family that applies each drawn g: linear (the paper, positions m/g), ntk or "
                        "yarn (need a base with rope_type='default'); recorded in run.json and the export's config")
    p.add_argument("--data", type=path_arg("--data"), default=d.data,
                   help="'stdlib', a local file/folder, or a datasets name (streamed)")
    p.add_argument("--data-config", default=None)
    p.add_argument("--text-field", default=d.text_field)
    p.add_argument("--max-docs", type=int_arg("--max-docs", 1), default=None)
    p.add_argument("--tokenizer", type=tokenizer_arg("--tokenizer"), default=None,
                   help="default: the model's own; or bytes | bpe | JSON path")
    p.add_argument("--seq-len", type=int_arg("--seq-len", 2), default=d.seq_len, help="R (default 4096)")
    p.add_argument("--g-max", type=int_arg("--g-max", 1), default=d.g_max)
    p.add_argument("--n-sink", type=int_arg("--n-sink", 0), default=d.n_sink)
    p.add_argument("--fixed-scale", type=int_arg("--fixed-scale", 1), default=None,
                   help=f"g for the {' / '.join(n for n, sc in SCHEMES.items() if sc.uses_fixed_scale)} schemes")
    p.add_argument("--steps", type=int_arg("--steps", 1), default=d.steps)
    p.add_argument("--lr", type=float_arg("--lr", 0, lo_open=True), default=d.lr)
    p.add_argument("--warmup-steps", type=int_arg("--warmup-steps", 0), default=d.warmup_steps)
    p.add_argument("--schedule", choices=("constant", "cosine"), default=d.schedule)
    p.add_argument("--global-batch", type=int_arg("--global-batch", 1), default=d.global_batch)
    p.add_argument("--micro-batch", type=int_arg("--micro-batch", 1), default=d.micro_batch)
    p.add_argument("--seed", type=int_arg("--seed", 0), default=d.seed)
    ck = p.add_mutually_exclusive_group()
    ck.add_argument("--gradient-checkpointing", dest="gradient_checkpointing", action="store_true", default=None)
    ck.add_argument("--no-gradient-checkpointing", dest="gradient_checkpointing", action="store_false")
    p.add_argument("--optimizer", choices=modes.OPTIMIZERS, default=None,
                   help=f"one of {', '.join(modes.OPTIMIZERS)} (default: paged_adamw8bit for full on a GPU, else adamw)")
    p.add_argument("--lora-r", type=int_arg("--lora-r", 1), default=d.lora_r)
    p.add_argument("--lora-alpha", type=int_arg("--lora-alpha", 1), default=d.lora_alpha)
    p.add_argument("--train-embed-norm", action="store_true", help="LongLoRA: also train embeddings and norms")
    p.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default=None,
                   help="float32 | bfloat16 | float16 (default: bf16 on GPU)")
    p.add_argument("--attn-implementation", choices=("sdpa", "eager", "flash_attention_2"), default=None,
                   help="sdpa | eager | flash_attention_2")
    p.add_argument("--device", type=device_arg("--device", auto=False), default=None)
    p.add_argument("--trust-remote-code", action="store_true", help="run code shipped with the model (off by default)")
    p.add_argument("--out-dir", type=out_folder_arg("--out-dir"), default=d.out_dir)
    p.add_argument("--checkpoint-every", type=int_arg("--checkpoint-every", 0), default=0)
    p.add_argument("--export-g", type=int_arg("--export-g", 0), default=d.export_g,
                   help="g of the merged export, scaled with --family (0 = no export)")
    p.add_argument("--no-progress", action="store_true")


def run(args) -> int:
    check_int("--n-sink", args.n_sink, 0, args.seq_len - 1, note=f"sinks lie inside a window of --seq-len {args.seq_len}")
    cfg = FinetuneConfig(
        model=args.model, mode=args.mode, scheme=args.scheme, family=args.family, data=args.data,
        data_config=args.data_config, text_field=args.text_field, max_docs=args.max_docs, tokenizer=args.tokenizer,
        seq_len=args.seq_len, g_max=args.g_max, n_sink=args.n_sink, fixed_scale=args.fixed_scale, steps=args.steps,
        lr=args.lr, warmup_steps=args.warmup_steps, schedule=args.schedule, global_batch=args.global_batch,
        micro_batch=args.micro_batch, seed=args.seed, gradient_checkpointing=args.gradient_checkpointing,
        optimizer=args.optimizer, lora_r=args.lora_r, lora_alpha=args.lora_alpha,
        train_embed_norm=args.train_embed_norm, dtype=args.dtype, attn_implementation=args.attn_implementation,
        device=args.device, trust_remote_code=args.trust_remote_code, out_dir=args.out_dir,
        checkpoint_every=args.checkpoint_every, export_g=args.export_g or None, progress=not args.no_progress,
    )
    # before any work: --model (the check every command shares) and the packages this run will import
    pretrained.check_model(cfg.model, "--model")
    if cfg.mode != "full":
        require("peft", extra="train", purpose=f"--mode {cfg.mode} (LoRA adapters)", load=False)
    if cfg.mode == "qlora" or (cfg.optimizer or "").endswith("8bit"):
        require("bitsandbytes", extra="gpu", load=False, hint="or pick --mode full/lora with --optimizer adamw",
                purpose="--mode qlora (4-bit NF4 weights)" if cfg.mode == "qlora" else f"--optimizer {cfg.optimizer}")
    if not (cfg.data == "stdlib" or Path(cfg.data).is_dir()
            or (Path(cfg.data).is_file() and not cfg.data.endswith((".jsonl", ".json", ".jsonl.gz", ".json.gz")))):
        require("datasets", extra="train", purpose=f"--data {cfg.data!r} (a .jsonl file or a datasets name)", load=False)
    out = finetune(cfg)
    s = out["summary"]
    if s is None:  # not the main process of a multi-process launch
        return 0
    print(f"{s['mode']} / {s['scheme']} ({s['family']}) on {s['device']}: {s['steps']} steps (resumed from "
          f"{s['resumed_from']}), final loss {s['final_loss']:.4f}, {s['trainable']:,} of {s['total']:,} parameters trained")
    if s["export"]:
        e = s["export"]
        print(f"exported: adapter={e.get('adapter')} merged={e['merged']} (g={e['g']}, family {e['family']})")
    print(f"run record: {os.path.join(cfg.out_dir, 'run.json')}")
    return 0
