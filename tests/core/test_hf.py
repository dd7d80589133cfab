"""The E² hook on real, unmodified transformers models (Llama, Mistral, Qwen2)."""
import pytest
import torch
import transformers

from e2llm_lite.augment import AugmentConfig, sample
from e2llm_lite.tour import hook_parity
from e2llm_lite.hf import (
    check_position_ids,
    current_scale,
    e2_context,
    e2_forward,
    fa2_safe_position_ids,
    rope_scale,
    rotary_modules,
    save_for_scale,
    scale_for_length,
)
from e2llm_lite.models import ARCHITECTURES, tiny_model

L = 64


def ids_for(model, bsz=2, n=L, seed=0):
    return torch.randint(0, model.config.vocab_size, (bsz, n), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
@pytest.mark.parametrize("g", [2, 7])
def test_hook_parity_with_float_positions_hf_linear_and_reload(arch, g):
    r = hook_parity(arch, g=g, seed=g, base_window=L)
    assert min(r["t"]) >= 0 and max(r["t"]) <= L * g - L
    assert r["hook_vs_float_positions"] < 1e-5, r
    assert r["hook_vs_hf_linear"] < 1e-5, r
    assert r["save_reload_vs_hook"] < 1e-5, r


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
@torch.inference_mode()
def test_scaling_changes_logits_and_is_restored_exactly(arch):
    model = tiny_model(arch, base_window=L)
    ids = ids_for(model)
    before = [m.inv_freq.clone() for m in rotary_modules(model)]
    plain = model(ids).logits
    with rope_scale(model, 4):
        assert current_scale(model) == 4.0
        scaled = model(ids).logits
        with rope_scale(model, 2):  # nesting composes
            assert current_scale(model) == 8.0
            torch.testing.assert_close(rotary_modules(model)[0].inv_freq, before[0] / 8)
        assert current_scale(model) == 4.0
    assert (plain - scaled).abs().max() > 1e-3  # the hook really changes the model (random weights: small)
    with pytest.raises(RuntimeError, match="boom"):
        with rope_scale(model, 3):
            raise RuntimeError("boom")
    assert current_scale(model) == 1.0
    for m, b in zip(rotary_modules(model), before):
        assert torch.equal(m.inv_freq, b)  # bit-for-bit
    assert not model._forward_pre_hooks  # the mask guard is gone too
    torch.testing.assert_close(model(ids).logits, plain, rtol=0, atol=0)


@torch.inference_mode()
def test_attention_mask_trap_is_guarded():
    """Without a mask and cache, transformers reads E²'s jump 3 -> 4+t as a new packed sequence."""
    model = tiny_model("llama", base_window=L)
    ids = ids_for(model)
    draw = sample(AugmentConfig(L, L, 8, fixed_scale=4), 1, batch_size=2, scheme="e2-fixed-scale")
    assert draw.shift[0] > 0
    mask = torch.ones_like(ids)
    with rope_scale(model, 4):
        right = model(input_ids=ids, position_ids=draw.position_ids, attention_mask=mask, use_cache=False).logits
        guarded = model(input_ids=ids, position_ids=draw.position_ids, use_cache=False).logits
    # the unguarded call shows the trap: the same inputs, silently different logits
    with torch.no_grad():
        for m in rotary_modules(model):
            m.inv_freq /= 4
        trapped = model(input_ids=ids, position_ids=draw.position_ids, use_cache=False).logits
        for m in rotary_modules(model):
            m.inv_freq *= 4
    assert (trapped - right).abs().max() > 1e-2
    torch.testing.assert_close(guarded, right, rtol=0, atol=0)


@torch.inference_mode()
def test_per_sample_scales_equal_per_row_forward():
    model = tiny_model("qwen2", base_window=L)
    cfg = AugmentConfig(L, L, 9, per_sample=True)
    draw = sample(cfg, 3, batch_size=3)
    assert draw.uniform_scale is None
    ids = ids_for(model, bsz=3)
    out = e2_forward(model, ids, draw).logits
    for b in range(3):
        with rope_scale(model, int(draw.scale[b])):
            row = model(input_ids=ids[b : b + 1], position_ids=draw.position_ids[b : b + 1],
                        attention_mask=torch.ones_like(ids[b : b + 1])).logits
        torch.testing.assert_close(out[b : b + 1], row, atol=1e-5, rtol=1e-5)


def test_backward_inside_context_and_gradient_checkpointing():
    model = tiny_model("llama", base_window=L).train()
    ids = ids_for(model)
    draw = sample(AugmentConfig(L, L, 8, fixed_scale=3), 0, batch_size=2, scheme="e2-fixed-scale")
    grads = []
    for ckpt in (False, True):
        model.zero_grad()
        if ckpt:
            getattr(model, "activation_checkpointing_enable", model.gradient_checkpointing_enable)()
        with e2_context(model, draw, ids) as kw:
            loss = model(input_ids=ids, labels=ids, use_cache=False, **kw).loss
            loss.backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    torch.testing.assert_close(grads[0], grads[1], atol=1e-6, rtol=1e-5)


@torch.inference_mode()
def test_offset_without_sinks_is_a_shift_and_fa2_rebase_is_exact():
    """With n_sink = 0 every token moves by t: RoPE cannot see it (Eq. 2); FA2 needs position 0."""
    model = tiny_model("llama", base_window=L)
    ids = ids_for(model)
    draw = sample(AugmentConfig(L, L, 8, n_sink=0, fixed_scale=4), 2, batch_size=2, scheme="e2-fixed-scale")
    assert int(draw.position_ids.min()) > 0  # no position 0 at all: the FA2 trap
    rebased = fa2_safe_position_ids(draw.position_ids)
    assert (rebased[:, 0] == 0).all()
    mask = torch.ones_like(ids)
    with rope_scale(model, 4):
        a = model(input_ids=ids, position_ids=draw.position_ids, attention_mask=mask).logits
        b = model(input_ids=ids, position_ids=rebased, attention_mask=mask).logits
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_zero_padded_position_ids_rejected():
    with pytest.raises(ValueError, match=r"row 1 at index 3 \(7 -> 0\)"):
        check_position_ids(torch.tensor([[0, 1, 2, 3], [5, 6, 7, 0]]))
    with pytest.raises(ValueError, match="shape"):
        check_position_ids(torch.tensor([0, 1, 2]))
    model = tiny_model("llama", base_window=16)
    draw = sample(AugmentConfig(16, 16, 2), 0)
    draw.position_ids = torch.tensor([list(range(12)) + [0, 0, 0, 0]])
    with pytest.raises(ValueError, match="decrease"):
        e2_forward(model, torch.zeros(1, 16, dtype=torch.long), draw)
    with pytest.raises(ValueError, match=r"shape \(1, 16\).*\(1, 8\)"):
        e2_forward(model, torch.zeros(1, 8, dtype=torch.long), sample(AugmentConfig(16, 16, 2), 0))


def test_models_without_rope_are_rejected():
    gpt2 = transformers.GPT2LMHeadModel(transformers.GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=50))
    with pytest.raises(ValueError, match="GPT2LMHeadModel has no rotary position embedding"):
        with rope_scale(gpt2, 2):
            pass
    bert = transformers.BertForMaskedLM(
        transformers.BertConfig(num_hidden_layers=1, hidden_size=32, num_attention_heads=2, intermediate_size=64, vocab_size=50)
    )
    with pytest.raises(ValueError, match="no rotary"):
        e2_forward(bert, torch.zeros(1, 8, dtype=torch.long), sample(AugmentConfig(8, 8, 2), 0))
    dyn = tiny_model("llama", rope_parameters={"rope_type": "dynamic", "factor": 2.0, "rope_theta": 10000.0})
    with pytest.raises(ValueError, match="rope_type='dynamic'.*supported rope types are default, linear, llama3"):
        rotary_modules(dyn)


@pytest.mark.parametrize("g", [0, 0.5, -1, float("nan"), float("inf"), True])
def test_bad_scale(g):
    with pytest.raises(ValueError, match="scale g must be"):
        with rope_scale(tiny_model("llama"), g):
            pass


def test_scale_for_length():
    assert [scale_for_length(n, 4096) for n in (1, 4096, 4097, 16384, 32768, 65536)] == [1, 1, 2, 4, 8, 16]
    assert scale_for_length(200_000, 4096, g_max=20) == 49  # unseen scales allowed by default (Fig. 5)
    with pytest.raises(ValueError, match=r"g=49, outside the trained scales G = \{1..20\}"):
        scale_for_length(200_000, 4096, g_max=20, allow_unseen=False)
    with pytest.raises(ValueError, match="n_tokens"):
        scale_for_length(0, 4096)
    with pytest.raises(ValueError, match="base_window"):
        scale_for_length(10, 0)


@torch.inference_mode()
def test_save_for_scale_composes_with_existing_linear_factor(tmp_path):
    model = tiny_model("llama", base_window=L, rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0})
    ids = ids_for(model)
    save_for_scale(model, tmp_path, 3)
    saved = transformers.AutoConfig.from_pretrained(tmp_path)
    assert saved.rope_parameters["rope_type"] == "linear" and saved.rope_parameters["factor"] == 6.0
    assert saved.max_position_embeddings == 3 * L
    assert model.config.rope_parameters["factor"] == 2.0 and model.config.max_position_embeddings == L  # untouched
    assert (tmp_path / "model.safetensors").exists()
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    with rope_scale(model, 3):
        ref = model(ids).logits
    torch.testing.assert_close(reloaded(ids).logits, ref, atol=1e-5, rtol=1e-5)


def test_save_for_scale_rejects_non_linear_rope(tmp_path):
    model = tiny_model(
        "llama",
        rope_parameters={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                         "original_max_position_embeddings": 64, "rope_theta": 10000.0},
    )
    with rope_scale(model, 2):  # llama3's frequencies are static: scaling them is fine
        pass
    with pytest.raises(ValueError, match="rope_type=\\['llama3'\\]"):
        save_for_scale(model, tmp_path, 2)


@torch.inference_mode()
def test_hf_generate_with_kv_cache_under_rope_scale():
    """generate() (KV cache, `cache=` kwarg in transformers 5.x) inside rope_scale: g = 1 changes nothing,
    and at g = 3 the cached generation equals greedy decoding that recomputes the whole prefix."""
    model = tiny_model("llama", base_window=L)
    ids = ids_for(model, bsz=1, n=3 * L - 10)
    mask = torch.ones_like(ids)
    plain = model.generate(ids, attention_mask=mask, max_new_tokens=8, do_sample=False)
    with rope_scale(model, 1):
        same = model.generate(ids, attention_mask=mask, max_new_tokens=8, do_sample=False)
    assert torch.equal(plain, same)
    with rope_scale(model, 3):
        cached = model.generate(ids, attention_mask=mask, max_new_tokens=8, do_sample=False)
        seq = ids
        for _ in range(8):  # no cache: full forward each step
            nxt = model(input_ids=seq, attention_mask=torch.ones_like(seq), use_cache=False).logits[:, -1].argmax(-1)
            seq = torch.cat([seq, nxt[:, None]], dim=1)
    assert torch.equal(cached, seq)
