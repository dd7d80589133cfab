"""Tests for e2llm_lite.data: corpus split, tokenizers, packed windows, passkey mixing."""
import torch
import pytest

from e2llm_lite import data as D


def test_split_is_stable_and_disjoint():
    # the rule depends only on the path: same answer twice, roughly the requested share held out
    paths = [f"pkg/mod_{i}.py" for i in range(2000)]
    held = [D.is_heldout(p, 0.1) for p in paths]
    assert held == [D.is_heldout(p, 0.1) for p in paths]
    assert 0.07 < sum(held) / len(held) < 0.13
    assert not any(D.is_heldout(p, 0.0) for p in paths) and all(D.is_heldout(p, 1.0) for p in paths)
    with pytest.raises(ValueError, match="heldout_frac"):
        D.is_heldout("a.py", 1.5)


def test_load_corpus_folder_split(tmp_path):
    for i in range(40):
        (tmp_path / f"f{i}.py").write_text(f"x = {i}\n")
    (tmp_path / "notes.txt").write_text("not python")
    tr = D.load_corpus(tmp_path, "train", heldout_frac=0.3)
    ho = D.load_corpus(tmp_path, "heldout", heldout_frac=0.3)
    assert set(tr.paths).isdisjoint(ho.paths) and len(tr) + len(ho) == 40
    assert set(ho.paths) == {f"f{i}.py" for i in range(40) if D.is_heldout(f"f{i}.py", 0.3)}
    assert D.load_corpus(tmp_path, "all", exts=None).paths[-1] == "notes.txt"
    with pytest.raises(ValueError, match="split"):
        D.load_corpus(tmp_path, "test")


def test_stdlib_heldout_split_is_known():
    ho = D.load_corpus(split="heldout", max_docs=5)
    assert len(ho) == 5 and all(D.is_heldout(p) for p in ho.paths)
    assert ho.meta["python"].count(".") == 2


def test_byte_tokenizer_roundtrip():
    tok = D.ByteTokenizer()
    text = "def f(x):\n    return 'é' * x\n"
    ids = tok.encode(text)
    assert tok.vocab_size == 256 and len(ids) == len(text.encode()) and tok.decode(ids) == text


def test_bpe_trains_and_roundtrips(tmp_path):
    texts = ["def add(a, b):\n    return a + b\n" * 20, "class Foo:\n    pass\n" * 20]
    tok = D.train_bpe(texts, vocab_size=300)
    assert tok.vocab_size <= 300 and tok.eos_id is not None
    ids = tok.encode(texts[0])
    assert len(ids) < len(texts[0]) / 2  # merges compress repeated code
    assert tok.decode(ids) == texts[0]
    path = tok.save(tmp_path / "tok.json")
    again = D.load_tokenizer(path)
    assert again.encode("def add(q):") == tok.encode("def add(q):")
    with pytest.raises(ValueError, match="tokenizer"):
        D.load_tokenizer(tmp_path / "missing.json")


def test_shipped_tokenizer_loads():
    tok = D.load_tokenizer("bpe")
    assert tok.vocab_size == 2048
    code = "import os\nfor name in os.listdir('.'):\n    print(name)\n"
    assert tok.decode(tok.encode(code)) == code


def test_packed_windows_deterministic_and_valid():
    docs = [torch.arange(100), torch.arange(1000, 1050)]
    pw = D.PackedWindows(docs, seq_len=16, batch_size=4, seed=3, eos_id=-1)
    assert len(pw) == 152
    b = pw.get_batch(5)
    assert b.shape == (4, 16) and b.dtype == torch.int64
    assert torch.equal(b, D.PackedWindows(docs, 16, 4, seed=3, eos_id=-1).get_batch(5))
    assert not torch.equal(b, pw.get_batch(6)) and not torch.equal(b, D.PackedWindows(docs, 16, 4, 4, -1).get_batch(5))
    # every row is a contiguous stretch of the stream
    for row in b:
        s = int((pw.stream == row[0]).nonzero()[0]) if row[0] != -1 else None
        if s is not None:
            assert torch.equal(pw.stream[s : s + 16], row)
    with pytest.raises(ValueError, match="seq_len"):
        D.PackedWindows(torch.arange(10), 16, 1)


def test_long_segments_same_tokens():
    docs = [torch.arange(10), torch.arange(100), torch.arange(50)]
    segs = D.long_segments(docs, 40)
    assert [len(s) for s in segs] == [40, 40] and torch.equal(segs[1], torch.arange(40))
    with pytest.raises(ValueError, match="longest: 100"):
        D.long_segments(docs, 200)


def test_passkey_mix_rows_and_answer_loss():
    pw = D.PackedWindows(torch.arange(500) % 50, seq_len=12, batch_size=4, seed=0)

    def sampler(gen, n):
        ids = torch.randint(50, 60, (n, 12), generator=gen)
        mask = torch.zeros(n, 12, dtype=torch.bool)
        mask[:, -2:] = True
        return ids, mask

    mix = D.PasskeyMix(pw, sampler, n_passkey=1, seed=0)
    b, m = mix.get_batch(2), mix.answer_mask(2)
    assert torch.equal(b[:3], pw.get_batch(2)[:3]) and bool((b[3] >= 50).all())
    assert m.sum() == 2 and bool(m[3, -2:].all())
    assert torch.equal(D.PasskeyMix(pw, sampler, 1, 0).get_batch(2), b)
    # the extra loss is the CE on the two answer targets only
    logits = torch.randn(4, 12, 60)
    out = type("O", (), {"logits": logits})()
    loss = mix.answer_loss(2.0)(out, b, 2, None)
    ref = torch.nn.functional.cross_entropy(logits[3, -3:-1], b[3, -2:])
    torch.testing.assert_close(loss, 2 * ref)
    # under 2 processes each rank sees only its rows (draw.extra["rows"], set by the training loop):
    # rank 0 holds rows 0-1 (no passkey row, no extra loss), rank 1 rows 2-3 (the passkey row is its 2nd)
    from e2llm_lite.augment import Draw

    def draw_for(rows):
        d = Draw(scale=torch.ones(2, dtype=torch.long), shift=torch.zeros(2, dtype=torch.long),
                 position_ids=torch.arange(12).expand(2, 12))
        d.extra["rows"] = rows
        return d

    out0 = type("O", (), {"logits": logits[:2]})()
    assert mix.answer_loss(2.0)(out0, b[:2], 2, draw_for((0, 2))) is None
    out1 = type("O", (), {"logits": logits[2:]})()
    torch.testing.assert_close(mix.answer_loss(2.0)(out1, b[2:], 2, draw_for((2, 4))), 2 * ref)


def test_passkey_mix_every_kth_batch():
    # one long sequence per batch (PI): passkey rows only in every 4th batch, no extra loss elsewhere
    pw = D.PackedWindows(torch.arange(500) % 50, seq_len=12, batch_size=1, seed=0)
    sampler = lambda gen, n: (torch.full((n, 12), 55), torch.ones(n, 12, dtype=torch.bool))  # noqa: E731
    mix = D.PasskeyMix(pw, sampler, n_passkey=1, seed=0, every=4)
    assert [bool(mix.answer_mask(i).any()) for i in range(8)] == [True, False, False, False] * 2
    out = type("O", (), {"logits": torch.randn(1, 12, 60)})()
    assert mix.answer_loss()(out, mix.get_batch(1), 1, None) is None
    assert torch.isfinite(mix.answer_loss()(out, mix.get_batch(4), 4, None))


def test_eval_segments_skip_generated_and_follow_hash_order(tmp_path):
    import hashlib

    (tmp_path / "encodings").mkdir()
    (tmp_path / "encodings" / "cp1.py").write_text("x = 1\n" * 50)
    for name in ("a.py", "b.py", "c.py", "short.py"):
        (tmp_path / name).write_text("y = 2\n" * (2 if name == "short.py" else 50))
    corpus = D.load_corpus(tmp_path, "all")
    segs, paths = D.eval_segments(D.ByteTokenizer(), corpus, length=100, n=2)
    assert all(len(s) == 100 for s in segs) and "encodings/cp1.py" not in paths and "short.py" not in paths
    key = lambda p: hashlib.sha256(p.encode()).hexdigest()  # noqa: E731
    assert paths == sorted(["a.py", "b.py", "c.py"], key=key)[:2]
    with pytest.raises(ValueError, match="has 10000 tokens"):
        D.eval_segments(D.ByteTokenizer(), corpus, length=10000, n=1)
