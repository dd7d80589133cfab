r"""Data for the CPU miniature: a real corpus that ships offline, two tokenizers, packed windows.

**Corpus.** By default the CPython standard library's own ``.py`` files
(``sysconfig.get_paths()["stdlib"]``, ~1,800 files, ~31 MB): every Python install has them, so the
miniature needs no download. Source code has long-range structure (imports used hundreds of lines
later, class attributes, repeated identifiers) that a longer context can exploit — what the paper's
long-context perplexity measures. ``--corpus PATH`` takes the user's own text files or folders, and
any other string is tried as a Hugging Face ``datasets`` name (needs the network or a local cache).

**Split.** A file is *held out* when the first 8 hex digits of ``sha256(relative posix path)``, read
as an integer, fall in the lowest ``heldout_frac`` of :math:`[0, 16^8)`. The rule depends only on
the path, so it gives the same split on every machine and is stable when files are added. The
stdlib's *content* differs between Python versions: results record ``sys.version``.

**Tokenizers.** :class:`ByteTokenizer` (256 ids, no training) and :class:`BPETokenizer`, a
byte-level BPE trained locally with Hugging Face ``tokenizers``. Measured on this corpus while the
miniature was designed (2-core CPU): with bytes a window of 128–256 holds a few lines of code and a
tiny model gains almost nothing from more context; a 2K-token BPE packs ~3× more text per position,
and the shipped base then *uses* its window — its cross-entropy falls from 4.03 on the first 8 predicted
tokens of a window to 3.33 on positions 128–255 (128 windows of 256 tokens cut from the 8 held-out
evaluation segments of :func:`eval_segments`; re-measure with :func:`e2llm_lite.models.load_base` and a
per-position ``cross_entropy``) — and blows up past it (``results/table3.json``, row "base"): the
regime the paper studies.
The shipped BPE (``assets/base/tokenizer.json``, beside the shipped base model) is rebuilt by :func:`train_bpe` from the train split.

**Packing.** :class:`PackedWindows` concatenates documents (an end-of-text id between them) and
serves batches of ``R``-token windows at random offsets. ``get_batch(i)`` is a pure function of
``(seed, i)``, so a resumed training run sees exactly the batches it would have seen.
"""
from __future__ import annotations

import hashlib
import os
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import torch

from e2llm_lite.validation import check_int, local_path

__all__ = [
    "Corpus",
    "ByteTokenizer",
    "BPETokenizer",
    "BASE_ASSETS",
    "stdlib_root",
    "is_heldout",
    "load_corpus",
    "train_bpe",
    "load_tokenizer",
    "encode_docs",
    "long_segments",
    "eval_segments",
    "PackedWindows",
    "PasskeyMix",
    "passkey_rows",
    "filler_text",
]

#: folder of the shipped tokenizer and base model
#: the shipped base model and its BPE tokenizer (package data owned by the top level: every study and the CLI
#: defaults read it; ``e2llm-lite pretrain --install`` rebuilds it)
BASE_ASSETS = Path(__file__).resolve().parent / "assets" / "base"

#: default share of files held out for evaluation (by path hash, see module docstring)
HELDOUT_FRAC = 0.1

#: folders of the standard library that are not the library itself
_SKIP_DIRS = {"site-packages", "__pycache__", "dist-packages", "idle_test", "lib2to3"}


# --- corpus ------------------------------------------------------------------------------------


@dataclass
class Corpus:
    """Documents (one per file) of one split, with their relative paths and where they came from."""

    docs: list[str]  # document texts, sorted by path
    paths: list[str]  # relative posix paths (or dataset row ids)
    source: str  # "stdlib", a folder/file path, or a datasets name
    split: str  # "train" | "heldout" | "all"
    meta: dict = field(default_factory=dict)  # python version, heldout_frac, counts

    def __len__(self) -> int:
        return len(self.docs)

    @property
    def n_chars(self) -> int:
        return sum(len(d) for d in self.docs)


def stdlib_root() -> Path:
    """The folder with this interpreter's standard-library sources."""
    return Path(sysconfig.get_paths()["stdlib"])


def is_heldout(relpath: str, heldout_frac: float = HELDOUT_FRAC) -> bool:
    """True when ``relpath`` belongs to the held-out split (stable sha256 rule, module docstring)."""
    if not 0.0 <= heldout_frac <= 1.0:
        raise ValueError(f"heldout_frac must be in [0, 1], got {heldout_frac!r}")
    h = int(hashlib.sha256(relpath.replace(os.sep, "/").encode("utf-8")).hexdigest()[:8], 16)
    return h < heldout_frac * 16**8


def _text_files(root: Path, exts: Sequence[str] | None) -> list[Path]:
    if root.is_file():
        return [root]
    out = []
    for p in sorted(root.rglob("*")):
        if not p.is_file() or any(part in _SKIP_DIRS for part in p.relative_to(root).parts):
            continue
        if exts is None or p.suffix in exts:
            out.append(p)
    return out


def load_corpus(
    source: str | os.PathLike | None = None,
    split: str = "train",
    heldout_frac: float = HELDOUT_FRAC,
    exts: Sequence[str] | None = (".py",),
    max_docs: int | None = None,
    text_field: str = "text",
) -> Corpus:
    """Load a corpus split.

    ``source``: None (standard library), a folder or file (``exts`` filters a folder; ``None`` = any
    file that decodes as UTF-8), or a ``datasets`` name (rows become documents; the split rule uses
    the row index as the "path"). ``split``: ``"train"``, ``"heldout"`` or ``"all"``.
    """
    if split not in ("train", "heldout", "all"):
        raise ValueError(f"split must be 'train', 'heldout' or 'all', got {split!r}")
    meta = {"python": sys.version.split()[0], "heldout_frac": heldout_frac}
    items: list[tuple[str, str]] = []  # (relpath, text)
    if source is None or str(source) == "stdlib":
        root, name = stdlib_root(), "stdlib"
        files = _text_files(root, exts)
    elif Path(source).exists():
        root, name = Path(source), str(source)
        files = _text_files(root, exts if root.is_dir() else None)
    else:
        root, name, files = None, str(source), []
    if root is not None:
        base = root if root.is_dir() else root.parent
        for p in files:
            rel = p.relative_to(base).as_posix()
            if split != "all" and is_heldout(rel, heldout_frac) != (split == "heldout"):
                continue  # filter before reading: loading the held-out split stays fast
            try:
                text = p.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue  # binary or unreadable file: not text
            items.append((rel, text))
    else:
        local_path("corpus", source)  # written as a path that does not exist: FileNotFoundError, no `datasets` lookup
        try:
            import datasets
        except ImportError as e:  # pragma: no cover - optional extra
            raise ValueError(f"corpus {source!r} is not a local file or folder, and reading it as a `datasets` name "
                             f"needs `datasets`: pip install \"e2llm-lite[train]\"") from e
        ds = datasets.load_dataset(name, split="train")
        if text_field not in ds.column_names:
            raise ValueError(f"dataset {name!r} has no column {text_field!r}; columns: {ds.column_names}")
        for i, row in enumerate(ds):
            items.append((f"{i:09d}", row[text_field]))
            if max_docs is not None and len(items) >= 4 * max_docs:
                break
    if not items:
        raise ValueError(f"corpus {name!r} holds no readable text files (extensions {exts})")
    items.sort()
    if split != "all":
        want = split == "heldout"
        items = [(p, t) for p, t in items if is_heldout(p, heldout_frac) == want]
    if max_docs is not None:
        items = items[:max_docs]
    meta.update(n_docs=len(items), n_chars=sum(len(t) for _, t in items))
    return Corpus([t for _, t in items], [p for p, _ in items], name, split, meta)


# --- tokenizers --------------------------------------------------------------------------------


class ByteTokenizer:
    """UTF-8 bytes as tokens: 256 ids, nothing to train. Id 0 (NUL, absent from text) ends a document."""

    name = "bytes"
    vocab_size = 256
    eos_id = 0

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: Iterable[int]) -> str:
        return bytes(int(i) for i in ids).decode("utf-8", errors="replace")

    def to_dict(self) -> dict:
        return {"kind": "bytes"}


class BPETokenizer:
    """A byte-level BPE (Hugging Face ``tokenizers``) with the same small interface as bytes."""

    name = "bpe"
    EOS = "<|endoftext|>"

    def __init__(self, tokenizer) -> None:
        self.tok = tokenizer  # tokenizers.Tokenizer
        eos = tokenizer.token_to_id(self.EOS)
        self.eos_id = int(eos) if eos is not None else None

    @property
    def vocab_size(self) -> int:
        return int(self.tok.get_vocab_size())

    def encode(self, text: str) -> list[int]:
        return list(self.tok.encode(text).ids)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [list(e.ids) for e in self.tok.encode_batch(list(texts))]

    def decode(self, ids: Iterable[int]) -> str:
        return self.tok.decode([int(i) for i in ids])

    def save(self, path: str | os.PathLike) -> str:
        """Write the tokenizer JSON atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(self.tok.to_str(), encoding="utf-8")
        os.replace(tmp, path)
        return str(path)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "BPETokenizer":
        from tokenizers import Tokenizer

        return cls(Tokenizer.from_file(str(path)))

    def to_dict(self) -> dict:
        return {"kind": "bpe", "vocab_size": self.vocab_size}


def train_bpe(texts: Sequence[str], vocab_size: int = 2048, max_chars: int | None = 8_000_000) -> BPETokenizer:
    """Train a byte-level BPE of ``vocab_size`` tokens on ``texts`` (deterministic for fixed input).

    ``max_chars`` caps the training text (documents in the given order) to keep it to seconds on a CPU.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    if vocab_size < 256 + 1:
        raise ValueError(f"vocab_size must be >= 257 (256 bytes + end-of-text), got {vocab_size}")
    picked, total = [], 0
    for t in texts:
        if max_chars is not None and total >= max_chars:
            break
        picked.append(t)
        total += len(t)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[BPETokenizer.EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(picked, trainer=trainer)
    return BPETokenizer(tok)


def load_tokenizer(name: str | os.PathLike = "bpe"):
    """``"bytes"``, ``"bpe"`` (the shipped ``assets/base/tokenizer.json``) or a path to a tokenizer JSON."""
    if str(name) == "bytes":
        return ByteTokenizer()
    path = BASE_ASSETS / "tokenizer.json" if str(name) == "bpe" else Path(name)
    if not path.is_file():
        hint = " (run `e2llm-lite pretrain` to rebuild the shipped assets)" if str(name) == "bpe" else ""
        raise ValueError(f"tokenizer {str(name)!r}: no file {path}{hint}; valid: 'bytes', 'bpe' or a JSON path")
    return BPETokenizer.from_file(path)


def tokenizer_from_dict(d: dict, path: str | os.PathLike | None = None):
    """Rebuild a tokenizer from :meth:`to_dict` (``path`` = JSON file for BPE)."""
    return ByteTokenizer() if d.get("kind") == "bytes" else load_tokenizer(path or "bpe")


# --- token streams -----------------------------------------------------------------------------


def encode_docs(tokenizer, docs: Sequence[str], min_len: int = 1) -> list[torch.Tensor]:
    """Encode documents to 1-D int64 tensors, dropping those shorter than ``min_len`` tokens."""
    enc = tokenizer.encode_batch(docs) if hasattr(tokenizer, "encode_batch") else [tokenizer.encode(d) for d in docs]
    return [torch.tensor(ids, dtype=torch.int64) for ids in enc if len(ids) >= min_len]


def long_segments(docs: Sequence[torch.Tensor], length: int, max_docs: int | None = None) -> list[torch.Tensor]:
    """The first ``length`` tokens of every document that has at least ``length`` (evaluation set).

    Scoring every window size on these same segments keeps the tokens identical across the columns of
    a perplexity table; only the context each token sees changes.
    """
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    out = [d[:length].clone() for d in docs if len(d) >= length]
    if max_docs is not None:
        out = out[:max_docs]
    if not out:
        longest = max((len(d) for d in docs), default=0)
        raise ValueError(f"no document has {length} tokens (longest: {longest}); use a shorter length")
    return out


#: folders whose files are generated tables, not prose or code (excluded from evaluation sets)
GENERATED = ("encodings/",)


def eval_segments(tokenizer, corpus: "Corpus", length: int, n: int, exclude: Sequence[str] = GENERATED) -> tuple[list[torch.Tensor], list[str]]:
    """``n`` evaluation segments of ``length`` tokens from ``corpus`` and the paths they come from.

    Files under ``exclude`` (the stdlib's generated codec tables: repetitive, PPL ~3) are skipped, and
    files are taken in the order of ``sha256(path)`` — stable on every machine and spread over the
    library instead of the alphabetically first folders.
    """
    order = sorted(range(len(corpus)), key=lambda i: hashlib.sha256(corpus.paths[i].encode("utf-8")).hexdigest())
    segs, paths = [], []
    for i in order:
        if any(corpus.paths[i].startswith(e) for e in exclude):
            continue
        ids = tokenizer.encode(corpus.docs[i])
        if len(ids) >= length:
            segs.append(torch.tensor(ids[:length], dtype=torch.int64))
            paths.append(corpus.paths[i])
            if len(segs) == n:
                break
    if not segs:
        raise ValueError(f"no file of corpus {corpus.source!r} has {length} tokens; use a shorter length")
    return segs, paths


class PackedWindows:
    """Random ``R``-token windows from a packed token stream; ``get_batch(i)`` depends only on (seed, i).

    ``tokens_or_docs``: a 1-D token tensor, or a list of 1-D documents joined with ``eos_id`` between
    them (when given). Windows start at uniform random offsets; a window may span a document boundary
    (as in the paper's packed pre-training data).
    """

    def __init__(
        self,
        tokens_or_docs: torch.Tensor | Sequence[torch.Tensor],
        seq_len: int,
        batch_size: int,
        seed: int = 0,
        eos_id: int | None = None,
    ) -> None:
        seq_len = check_int("seq_len", seq_len, 2)
        batch_size = check_int("batch_size", batch_size, 1)
        if isinstance(tokens_or_docs, torch.Tensor):
            stream = tokens_or_docs.reshape(-1).to(torch.int64)
        else:
            parts = []
            for d in tokens_or_docs:
                parts.append(torch.as_tensor(d, dtype=torch.int64).reshape(-1))
                if eos_id is not None:
                    parts.append(torch.tensor([eos_id], dtype=torch.int64))
            stream = torch.cat(parts) if parts else torch.zeros(0, dtype=torch.int64)
        if len(stream) < seq_len:
            raise ValueError(f"the token stream has {len(stream)} tokens, fewer than seq_len={seq_len}")
        self.stream = stream  # (N,) int64
        self.seq_len, self.batch_size, self.seed = seq_len, batch_size, int(seed)

    def __len__(self) -> int:
        return len(self.stream)

    def starts(self, index: int) -> torch.Tensor:
        """(B,) window starts of batch ``index`` — a fresh generator seeded by (seed, index)."""
        if index < 0:
            raise ValueError(f"batch index must be >= 0, got {index}")
        gen = torch.Generator().manual_seed((self.seed * 1_000_003 + index) % (2**63 - 1))
        return torch.randint(0, len(self.stream) - self.seq_len + 1, (self.batch_size,), generator=gen)

    def get_batch(self, index: int) -> torch.Tensor:
        """(B, R) int64 token windows of batch ``index``."""
        s = self.starts(index)
        offs = torch.arange(self.seq_len)
        return self.stream[s[:, None] + offs[None, :]]  # (B, R)

    def with_seq_len(self, seq_len: int, batch_size: int | None = None) -> "PackedWindows":
        """Same stream and seed, other window length (e.g. PI's g·L sequences)."""
        return PackedWindows(self.stream, seq_len, batch_size or self.batch_size, self.seed)


def passkey_rows(batch: int, frac: float) -> tuple[int, int]:
    """(passkey rows per batch, every k-th batch) giving a share ``frac`` of passkey rows (for :class:`PasskeyMix`)."""
    if frac <= 0:
        return 0, 1
    if batch * frac >= 1:
        return min(batch, round(batch * frac)), 1
    return 1, max(1, round(1 / (batch * frac)))


class PasskeyMix:
    """Packed LM windows with ``n_passkey`` rows per batch replaced by retrieval samples (task mixing).

    The paper fine-tunes on pre-training text mixed with task data (§4.1); here the task is passkey
    retrieval (:mod:`e2llm_lite.eval.retrieval`). ``sampler(generator, n) -> (ids (n, R), answer_mask (n, R))``
    builds the rows, e.g. ``lambda gen, n: retrieval.passkey_batch(tok, filler, R, n, gen)``.
    With ``every = k`` only every k-th batch has them (a batch of one long sequence, e.g. PI's).
    Like :class:`PackedWindows`, ``get_batch(i)`` and ``answer_mask(i)`` depend only on (seed, i).
    """

    def __init__(self, windows: PackedWindows, sampler, n_passkey: int, seed: int = 0, every: int = 1) -> None:
        if not 0 <= n_passkey <= windows.batch_size:
            raise ValueError(f"n_passkey must be in [0, batch_size] = [0, {windows.batch_size}], got {n_passkey}")
        every = check_int("every", every, 1)
        self.windows, self.sampler, self.n_passkey, self.seed = windows, sampler, n_passkey, int(seed)
        self.every = every  # passkey rows only in batches whose index is a multiple of `every`
        self.seq_len, self.batch_size = windows.seq_len, windows.batch_size
        self._last: tuple[int, torch.Tensor, torch.Tensor] | None = None

    def _build(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self._last is not None and self._last[0] == index:
            return self._last[1], self._last[2]
        ids = self.windows.get_batch(index).clone()  # (B, R)
        mask = torch.zeros_like(ids, dtype=torch.bool)  # (B, R)
        if self.n_passkey and index % self.every == 0:
            gen = torch.Generator().manual_seed((self.seed * 1_000_033 + index + 7) % (2**63 - 1))
            p_ids, p_mask = self.sampler(gen, self.n_passkey)  # (n, R) each
            ids[-self.n_passkey :], mask[-self.n_passkey :] = p_ids, p_mask
        self._last = (index, ids, mask)
        return ids, mask

    def get_batch(self, index: int) -> torch.Tensor:
        """(B, R) int64: LM windows, the last ``n_passkey`` rows passkey samples."""
        return self._build(index)[0]

    def answer_mask(self, index: int) -> torch.Tensor:
        """(B, R) bool: True on the answer tokens of the passkey rows of batch ``index``."""
        return self._build(index)[1]

    def answer_loss(self, weight: float = 1.0):
        """An ``extra_loss`` for :func:`e2llm_lite.train.loop.train`: ``weight`` × CE on the answer tokens."""

        def extra(outputs, input_ids, index, draw):
            if not self.n_passkey or weight == 0:
                return None
            m = self.answer_mask(index)  # (global micro-batch, R): True on answer tokens
            lo, hi = (draw.extra or {}).get("rows", (0, m.shape[0])) if draw is not None else (0, m.shape[0])
            m = m[lo:hi].to(input_ids.device)[:, 1:]  # this process's rows; targets that are answer tokens
            if not bool(m.any()):  # a batch without passkey rows (every > 1): no extra loss
                return None
            logits = outputs.logits[:, :-1][m]  # (n_answer, V)
            return weight * torch.nn.functional.cross_entropy(logits.float(), input_ids[:, 1:][m])

        return extra


def filler_text(corpus: "Corpus", max_chars: int = 200_000) -> str:
    """Haystack text for passkey samples: the first documents of ``corpus`` up to ``max_chars``."""
    out, total = [], 0
    for d in corpus.docs:
        if total >= max_chars:
            break
        out.append(d)
        total += len(d)
    return "\n\n".join(out)[:max_chars]
