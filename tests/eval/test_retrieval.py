"""e2llm_lite.eval.retrieval: prompt formats, exact lengths, greedy generation with and without KV cache."""
import json
import re

import pytest
import torch

from e2llm_lite import hf
from e2llm_lite.models import tiny_model
from e2llm_lite.eval.retrieval import (
    LONGLORA_GARBAGE,
    LONGLORA_QUESTION,
    LONGLORA_TASK,
    STYLES,
    ByteTokenizer,
    PasskeySample,
    encode,
    auto_generate,
    greedy_generate,
    passkey_batch,
    passkey_sample,
    plot_heatmap,
    retrieval_accuracy,
    retrieval_grid,
)

FILLER = (
    "In 1969 the first two nodes of the ARPANET exchanged 2 messages. Packet switching split data into "
    "small blocks that travel on their own and are put back together at the end. "
) * 4
DOCS = ["Alpha document about rivers and 7 bridges. " * 6, "Beta document about mountains. " * 6]


@pytest.fixture(scope="module")
def bpe():
    """A small byte-level BPE trained here in milliseconds (digits merge into multi-digit tokens)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers, decoders

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([FILLER, *DOCS, "PASSKEY=12345 67890 13579 24680"] * 3, trainer=trainer)
    return tok


@pytest.fixture(scope="module")
def model():
    # a larger init than HF's 0.02 makes attention sharp, so that positions (and g) change the output
    return tiny_model(vocab_size=256, hidden_size=32, num_layers=2, num_heads=2, base_window=32, seed=3, initializer_range=0.2)


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("tok_name", ["bytes", "bpe"])
def test_every_sample_has_exactly_length_tokens(style, tok_name, bpe):
    tok = ByteTokenizer() if tok_name == "bytes" else bpe
    filler = DOCS if style == "needle" else FILLER
    gen = torch.Generator().manual_seed(0)
    for length in (300, 457, 700):
        for depth in (0.0, 0.37, 1.0):
            s = passkey_sample(tok, filler, length, depth, gen, style=style)
            assert isinstance(s, PasskeySample) and s.length == length
            assert s.input_ids.numel() + s.answer_ids.numel() == length == s.full_ids.numel()
            assert s.input_ids.dtype == s.answer_ids.dtype == torch.int64


def test_miniature_format_digits_only_in_the_key(bpe):
    tok = ByteTokenizer()
    s = passkey_sample(tok, FILLER, 300, 0.5, torch.Generator().manual_seed(1))
    text = tok.decode(s.input_ids)
    assert re.fullmatch(r"\d{5}", s.key) and tok.decode(s.answer_ids) == s.key
    assert re.findall(r"\d+", text) == [s.key]  # the filler lost its digits ("1969", "2")
    assert text.count(f"\nPASSKEY={s.key}\n") == 1 and text.endswith("\nPASSKEY=")
    # the needle sits at the requested depth of the filler
    n_fill = 300 - len(encode(tok, f"\nPASSKEY={s.key}\n")) - len(encode(tok, "\nPASSKEY=")) - 5
    assert s.needle_start == round(0.5 * n_fill)
    assert text[s.needle_start :].startswith(f"\nPASSKEY={s.key}\n")
    # with a BPE the key line carries the very tokens of the answer (a pure copy)
    b = passkey_sample(bpe, FILLER, 300, 0.2, torch.Generator().manual_seed(1))
    ids, ans = b.input_ids.tolist(), b.answer_ids.tolist()
    assert any(ids[i : i + len(ans)] == ans for i in range(len(ids)))


def test_depth_zero_and_one_put_the_needle_first_and_last():
    tok = ByteTokenizer()
    s0 = passkey_sample(tok, FILLER, 200, 0.0, 5)
    s1 = passkey_sample(tok, FILLER, 200, 1.0, 5)
    assert tok.decode(s0.input_ids).startswith(f"\nPASSKEY={s0.key}\n")
    assert tok.decode(s1.input_ids).endswith(f"\nPASSKEY={s1.key}\n\nPASSKEY=")


def test_longlora_prompt_word_for_word():
    tok = ByteTokenizer()
    s = passkey_sample(tok, "", 500, 0.5, torch.Generator().manual_seed(2), style="longlora")
    text = tok.decode(s.input_ids)
    assert 1 <= int(s.key) <= 50000
    assert text.startswith(LONGLORA_TASK + "\n" + LONGLORA_GARBAGE[:20])
    assert f"\nThe pass key is {s.key}. Remember it. {s.key} is the pass key.\n" in text
    assert text.endswith("\n" + LONGLORA_QUESTION)
    assert tok.decode(s.answer_ids) == f" {s.key}"


def test_needle_style_uses_the_documents():
    tok = ByteTokenizer()
    s = passkey_sample(tok, DOCS, 400, 0.3, 4, style="needle")
    text = tok.decode(s.input_ids)
    city = re.search(r"The special magic number for (\w+) is: (\d+)\.", text)
    assert city and city.group(2) == s.key
    assert text.endswith(f"What is the special magic number for {city.group(1)}? The special magic number for {city.group(1)} is:")
    assert "document about" in text and tok.decode(s.answer_ids) == f" {s.key}"


def test_samples_are_reproducible_and_vary_with_the_seed():
    tok = ByteTokenizer()
    a = passkey_sample(tok, FILLER, 200, 0.5, 11)
    b = passkey_sample(tok, FILLER, 200, 0.5, torch.Generator().manual_seed(11))
    c = passkey_sample(tok, FILLER, 200, 0.5, 12)
    assert torch.equal(a.input_ids, b.input_ids) and a.key == b.key
    assert not torch.equal(a.input_ids, c.input_ids)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(depth=-0.1), r"depth must be a number in \[0, 1\], got depth=-0.1"),
        (dict(depth=1.5), r"depth=1.5"),
        (dict(length=10), r"length=10 is shorter than the 'miniature' prompt needs .*use length >= 29"),
        (dict(length=100, style="longlora"), r"length=100 is shorter than the 'longlora' prompt"),
        (dict(style="chat"), r"unknown style 'chat'; valid: 'miniature', 'longlora', 'needle'"),
        (dict(length=0), r"length must be an integer >= 1, got length=0"),
    ],
)
def test_bad_inputs_raise_value_error(kwargs, match):
    args = dict(length=200, depth=0.5, style="miniature") | kwargs
    with pytest.raises(ValueError, match=match):
        passkey_sample(ByteTokenizer(), FILLER, args["length"], args["depth"], 0, style=args["style"])


def test_passkey_batch_marks_the_answer():
    tok = ByteTokenizer()
    ids, mask = passkey_batch(tok, FILLER, 128, 3, 0)
    assert ids.shape == mask.shape == (3, 128)
    assert mask.sum(1).tolist() == [5, 5, 5] and bool(mask[:, -5:].all())
    for row in ids:
        text = tok.decode(row)
        key = text[-5:]
        assert text.count(f"PASSKEY={key}") == 2  # in the key line and as the completed answer


def reference_greedy(model, ids, n):
    """No cache, no tricks: recompute the whole sequence for every new token."""
    seq = ids.clone()
    with torch.no_grad():
        for _ in range(n):
            logits = model(input_ids=seq, attention_mask=torch.ones_like(seq)).logits
            seq = torch.cat([seq, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return seq[:, ids.shape[1] :]


@pytest.mark.parametrize("g", [1.0, 4.0])
def test_kv_cache_generation_equals_recomputation_under_rope_scale(model, g):
    prompts = torch.randint(0, 256, (2, 90), generator=torch.Generator().manual_seed(0))  # ~3x the window
    with hf.rope_scale(model, g):
        cached = greedy_generate(model, prompts, 12)
        full = greedy_generate(model, prompts, 12, use_cache=False)
        ref = reference_greedy(model, prompts, 12)
    assert cached.shape == (2, 12)
    assert torch.equal(cached, ref) and torch.equal(full, ref)
    with hf.rope_scale(model, 1.0 if g != 1.0 else 3.0):  # and the scale matters
        assert not torch.equal(greedy_generate(model, prompts, 12), cached)


def test_auto_generate_picks_g_from_prompt_plus_new_tokens(model):
    prompt = torch.randint(0, 256, (1, 60), generator=torch.Generator().manual_seed(1))
    out, g = auto_generate(model, prompt, 5)  # 65 tokens, L = 32 -> g = 3
    assert g == 3.0
    with hf.rope_scale(model, 3.0):
        assert torch.equal(out, greedy_generate(model, prompt, 5))
    assert auto_generate(model, prompt[:, :20], 5)[1] == 1.0  # inside the window: no scaling


def test_retrieval_accuracy_is_exact_match_at_auto_g(model):
    tok = ByteTokenizer()
    samples = [passkey_sample(tok, FILLER, 96, d, 7) for d in (0.0, 0.5, 1.0)]
    with hf.rope_scale(model, 3.0):  # auto g for 96 tokens with L = 32
        outs = [greedy_generate(model, s.input_ids, 5)[0] for s in samples]
    # make the first two answers what the model says, the third one not
    right = [PasskeySample(s.input_ids, o, s.depth, s.length, s.key) for s, o in zip(samples[:2], outs)]
    wrong = samples[2]
    wrong.answer_ids = outs[2].clone()
    wrong.answer_ids[-1] = (wrong.answer_ids[-1] + 1) % 256  # one token off = a miss
    acc, hits = retrieval_accuracy(model, right + [wrong], g="auto", return_hits=True, batch_size=2)
    assert hits == [True, True, False] and acc == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="samples is empty"):
        retrieval_accuracy(model, [])


def test_retrieval_grid_and_heatmap(model, tmp_path):
    tok = ByteTokenizer()
    kw = dict(lengths=[48, 96], depths=[0.0, 0.5, 1.0], n_per_cell=2, seed=3)
    grid = retrieval_grid(model, tok, FILLER, out_dir=tmp_path, stem="nh", **kw)
    assert grid["g"] == [2.0, 3.0] and len(grid["accuracy"]) == 3 and len(grid["accuracy"][0]) == 2
    assert all(a in (0.0, 0.5, 1.0) for row in grid["accuracy"] for a in row)
    assert retrieval_grid(model, tok, FILLER, **kw) == grid  # deterministic
    # a cell equals scoring its samples by hand
    from e2llm_lite.eval.retrieval import _cell_seed

    gen = torch.Generator().manual_seed(_cell_seed(3, 96, 0.5))
    samples = [passkey_sample(tok, FILLER, 96, 0.5, gen) for _ in range(2)]
    assert grid["accuracy"][1][1] == retrieval_accuracy(model, samples, g=3.0)
    saved = json.loads((tmp_path / "nh.json").read_text())
    assert saved == grid
    rows = (tmp_path / "nh.csv").read_text().splitlines()
    assert rows[0] == "depth,length,g,accuracy,n" and len(rows) == 1 + 6
    assert (tmp_path / "nh.png").stat().st_size > 1000
    fig, ax = plot_heatmap(grid)
    assert ax.get_xlabel() == "context length (tokens)" and [t.get_text() for t in ax.get_yticklabels()] == ["0%", "50%", "100%"]
