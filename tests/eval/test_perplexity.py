"""e2llm_lite.eval.perplexity: sliding-window perplexity against hand computations on a tiny Llama."""
import json
import math

import pytest
import torch

from e2llm_lite import hf
from e2llm_lite.eval.perplexity import PerplexityResult, perplexity, plan_windows, ppl_grid, resolve_g
from e2llm_lite.models import tiny_model

L = 32  # base window of the tiny model


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run fastest on one thread (two threads stall whenever the other core is busy)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def model():
    # a larger init than HF's 0.02 makes attention sharp, so that positions (and g) matter
    return tiny_model(vocab_size=64, hidden_size=32, num_layers=2, num_heads=2, base_window=L, seed=1, initializer_range=0.2)


@pytest.fixture(scope="module")
def docs():
    g = torch.Generator().manual_seed(0)
    return [torch.randint(0, 64, (n,), generator=g) for n in (75, 40, 58)]


def token_nll(model, ids, g=1.0):
    """(T-1,) NLL of tokens 1..T-1 of ``ids`` given everything before them: one plain forward."""
    with torch.no_grad(), hf.rope_scale(model, g):
        logits = model(input_ids=ids[None], attention_mask=torch.ones(1, len(ids), dtype=torch.long)).logits[0]
    return torch.nn.functional.cross_entropy(logits[:-1].double(), ids[1:], reduction="none")


def naive_nll(model, docs, window, stride, convention, g=1.0):
    """Reference: every window on its own, scored token by token (LongLoRA-style loop)."""
    total, count = 0.0, 0
    for doc in docs:
        start, prev_end = 0, 1
        while True:
            end = min(start + window, len(doc))
            nll = token_nll(model, doc[start:end], g)  # nll[j] scores token start + j + 1
            first = max(prev_end, start + 1) if convention == "new" else start + 1
            total += float(nll[first - start - 1 :].sum())
            count += end - first
            if end == len(doc):
                break
            prev_end, start = end, start + stride
    return total / count, count


def test_whole_document_window_equals_exp_mean_cross_entropy(model, docs):
    doc = docs[0]
    with torch.no_grad():
        loss = model(input_ids=doc[None], labels=doc[None]).loss  # HF's own mean CE
    for conv in ("new", "all"):
        r = perplexity(model, [doc], window=len(doc), g=None, convention=conv)
        assert isinstance(r, PerplexityResult)
        assert r.n_tokens == len(doc) - 1 and r.n_windows == 1
        assert r.ppl == pytest.approx(math.exp(loss.item()), rel=1e-5)
        assert r.nll == pytest.approx(loss.item(), rel=1e-5)


@pytest.mark.parametrize("window,stride", [(16, 5), (16, 16), (24, 7)])
@pytest.mark.parametrize("convention", ["new", "all"])
def test_matches_naive_per_window_loop(model, docs, window, stride, convention):
    ref_nll, ref_count = naive_nll(model, docs, window, stride, convention)
    r = perplexity(model, docs, window, stride, g=None, convention=convention, batch_size=3)
    assert r.n_tokens == ref_count
    assert r.nll == pytest.approx(ref_nll, rel=1e-5)


def test_new_scores_each_token_once_all_scores_every_window_token(model, docs):
    new = perplexity(model, docs, 16, 4, g=None, convention="new")
    all_ = perplexity(model, docs, 16, 4, g=None, convention="all")
    assert new.n_tokens == sum(len(d) - 1 for d in docs)  # every token but the first, exactly once
    n_windows = sum(len(plan_windows(len(d), 16, 4)) for d in docs)
    assert new.n_windows == all_.n_windows == n_windows
    assert all_.n_tokens == sum(e - s - 1 for d in docs for s, e, _ in plan_windows(len(d), 16, 4, "all"))
    assert all_.n_tokens > new.n_tokens
    assert all_.nll != pytest.approx(new.nll, rel=1e-6)  # overlapping windows score differently


def test_stride_equal_window_gives_disjoint_windows_and_conventions_agree(model, docs):
    plan = plan_windows(75, 16, 16)
    assert [s for s, _, _ in plan] == list(range(0, 75, 16))
    assert all(plan[i][1] == plan[i + 1][0] for i in range(len(plan) - 1))  # end_k == start_{k+1}
    new = perplexity(model, docs, 16, None, g=None, convention="new")
    all_ = perplexity(model, docs, 16, 16, g=None, convention="all")
    assert new.stride == 16 and new.n_tokens == all_.n_tokens == sum(len(d) - -(-len(d) // 16) for d in docs)
    assert new.nll == pytest.approx(all_.nll, rel=1e-9)
    # disjoint windows = the chunks evaluated as separate documents
    chunks = [d[s : s + 16] for d in docs for s in range(0, len(d), 16)]
    assert perplexity(model, chunks, 16, g=None).nll == pytest.approx(new.nll, rel=1e-6)


def test_plan_windows_hand_values():
    assert plan_windows(10, 4, 2, "new") == [(0, 4, 1), (2, 6, 4), (4, 8, 6), (6, 10, 8)]
    assert plan_windows(10, 4, 2, "all") == [(0, 4, 1), (2, 6, 3), (4, 8, 5), (6, 10, 7)]
    assert plan_windows(3, 8) == [(0, 3, 1)]  # a document shorter than the window: one short window
    assert plan_windows(1, 8) == []  # nothing to predict


def test_documents_are_never_crossed(model, docs):
    a, b = docs[0], docs[1]
    ra = perplexity(model, [a], 16, 4, g=None)
    rb = perplexity(model, [b], 16, 4, g=None)
    both = perplexity(model, [a, b], 16, 4, g=None, batch_size=8)  # windows of a and b share batches
    assert both.n_tokens == ra.n_tokens + rb.n_tokens
    assert both.nll == pytest.approx((ra.nll * ra.n_tokens + rb.nll * rb.n_tokens) / both.n_tokens, rel=1e-6)
    # b's score does not depend on what a contains
    other = perplexity(model, [torch.flip(a, [0]), b], 16, 4, g=None)
    b_share = lambda r, ra_: r.nll * r.n_tokens - ra_.nll * ra_.n_tokens  # noqa: E731
    ra_flip = perplexity(model, [torch.flip(a, [0])], 16, 4, g=None)
    assert b_share(other, ra_flip) == pytest.approx(b_share(both, ra), rel=1e-5)
    # whereas one concatenated document does cross the boundary (so the test above can fail)
    cat = perplexity(model, [torch.cat([a, b])], 16, 4, g=None)
    assert cat.n_tokens == both.n_tokens + 1
    assert cat.nll * cat.n_tokens != pytest.approx(both.nll * both.n_tokens, rel=1e-6)


def test_batch_size_does_not_change_the_result(model, docs):
    r1 = perplexity(model, docs, 24, 9, g=None, batch_size=1)
    r7 = perplexity(model, docs, 24, 9, g=None, batch_size=7)
    assert r7.nll == pytest.approx(r1.nll, rel=1e-5) and r7.n_tokens == r1.n_tokens


def test_auto_g_is_ceil_window_over_L_and_scales_positions(model, docs):
    assert resolve_g(model, "auto", 32) == 1.0
    assert resolve_g(model, "auto", 33) == 2.0
    assert resolve_g(model, "auto", 96) == 3.0
    assert resolve_g(model, "auto", 96, base_window=16) == 6.0
    assert resolve_g(model, None, 96) == 1.0 and resolve_g(model, 2.5, 96) == 2.5
    assert resolve_g(model, "4", 10) == 4.0 and resolve_g(model, lambda n: n / 16, 64) == 4.0
    doc = torch.cat([docs[0], docs[1]])[:96]
    auto = perplexity(model, [doc], 96, g="auto")
    assert auto.g == 3.0
    assert auto.nll == pytest.approx(perplexity(model, [doc], 96, g=3).nll, rel=1e-9)
    assert auto.nll == pytest.approx(float(token_nll(model, doc, 3.0).mean()), rel=1e-5)
    plain = perplexity(model, [doc], 96, g=None)
    assert plain.g == 1.0 and abs(plain.nll - auto.nll) > 1e-3
    # the model is restored after evaluation
    inv = hf.rotary_modules(model)[0].inv_freq.clone()
    perplexity(model, [doc], 96, g=5)
    assert torch.equal(hf.rotary_modules(model)[0].inv_freq, inv)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(window=1), r"window must be an integer >= 2, got window=1"),
        (dict(window=16, stride=17), r"stride must be an integer in \[1, 16\] \(at most the window\), got stride=17"),
        (dict(window=16, stride=0), r"stride=0"),
        (dict(window=16, convention="middle"), r"unknown convention 'middle'; valid: 'new', 'all'"),
        (dict(window=16, g=0.5), r"g must be .* >= 1, got g=0.5"),
        (dict(window=16, g="fast"), r"got g='fast'"),
        (dict(window=16, batch_size=0), r"batch_size must be an integer >= 1, got batch_size=0"),
    ],
)
def test_bad_inputs_raise_value_error_naming_value_and_range(model, docs, kwargs, match):
    with pytest.raises(ValueError, match=match):
        perplexity(model, docs, **kwargs)


def test_bad_documents(model):
    with pytest.raises(ValueError, match="empty"):
        perplexity(model, [], 16)
    with pytest.raises(ValueError, match="1-D tensor of token ids"):
        perplexity(model, [torch.rand(20)], 16)
    with pytest.raises(ValueError, match=">= 2 tokens"):
        perplexity(model, [torch.tensor([3])], 16)


def test_ppl_grid_table3_shape_and_files(model, docs, tmp_path):
    rows = {
        "base (none)": (model, None, 32),
        "fixed g=2": (model, 2.0, 64),
        "auto g": (model, "auto"),
    }
    grid = ppl_grid(rows, docs, [32, 64, 96], stride=16, out_dir=tmp_path, stem="t3", meta={"data": "random"})
    assert grid.rows == list(rows) and grid.lengths == [32, 64, 96]
    assert grid.ppl[0][1] is None and grid.ppl[0][2] is None and grid.ppl[1][2] is None
    assert grid.g[1][:2] == [2.0, 2.0] and grid.g[2] == [1.0, 2.0, 3.0]
    cell = perplexity(model, docs, 64, 16, g=2.0)
    assert grid.ppl[1][1] == pytest.approx(cell.ppl, rel=1e-9) and grid.n_tokens[1][1] == cell.n_tokens
    md = (tmp_path / "t3.md").read_text()
    assert "| base (none) |" in md and "–" in md and "stride 16" in md
    saved = json.loads((tmp_path / "t3.json").read_text())
    assert saved["ppl"][2][2] == pytest.approx(grid.ppl[2][2]) and saved["meta"] == {"data": "random"}
    assert (tmp_path / "t3.png").stat().st_size > 1000
    with pytest.raises(ValueError, match=r"stride must be an integer in \[1, 32\] \(at most min\(lengths\)\), got stride=40"):
        ppl_grid(rows, docs, [32, 64], stride=40)


def test_chunked_scoring_is_exact(model, docs, monkeypatch):
    import e2llm_lite.eval.perplexity as ev

    whole = perplexity(model, docs, 64, 16, g=None, batch_size=2)
    monkeypatch.setattr(ev, "_SCORE_CHUNK", 5)  # log-softmax over 5 positions at a time
    assert perplexity(model, docs, 64, 16, g=None, batch_size=2).nll == whole.nll
