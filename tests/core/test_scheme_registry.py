"""A scheme and a family are registry entries: a stub registered here runs through the training loop, the
``Trainer`` callback, the export and every ``--family`` entry point without any of them naming it.

The stub scheme ``every-other`` feeds the ids 0, 2, 4, … at g = 2 (every rotary position ``2m / 2 = m``, inside
``[0, L)``); the stub family ``identity-2`` leaves the frequencies as they are at every g and exports
``rope_type="default"``. Both are registered for one test and removed after it. (The miniature's run list takes
the same stub scheme as one more ``RunSpec``: ``tests/studies/test_miniature_reproduce.py``.)
"""
import pytest
import torch
import transformers

from e2llm_lite import cli
from e2llm_lite.augment import SCHEMES, AugmentConfig, Draw, Scheme, register_scheme, sample, sample_for_step
from e2llm_lite.data import PackedWindows
from e2llm_lite.hf import current_family, current_scale, rope_scale, save_for_scale
from e2llm_lite.models import tiny_model
from e2llm_lite.scaling import FAMILIES, Family, RopeBase, Scaled, hf_rope_parameters, register_family
from e2llm_lite.train.loop import TrainConfig, train

R = 16  # tokens per training row = the tiny model's window L
EVEN = (2 * torch.arange(R)).tolist()  # the stub's ids: 0, 2, …, 30


def every_other(cfg: AugmentConfig, gen: torch.Generator, batch_size: int) -> Draw:
    """ids 0, 2, 4, … with g = 2 for every row (no randomness)."""
    pos = (2 * torch.arange(cfg.train_len)).expand(batch_size, -1).clone()
    return Draw(scale=torch.full((batch_size,), 2, dtype=torch.int64), position_ids=pos)


@pytest.fixture
def stub_scheme():
    entry = register_scheme(Scheme("every-other", every_other, "even position ids at g = 2 (a test stub)",
                                   train_scale=lambda cfg: 2))
    yield entry
    SCHEMES.pop("every-other")


@pytest.fixture
def stub_family():
    fam = register_family(Family("identity-2", "identity", lambda base, g: Scaled(base.frequencies().clone(), 1.0),
                                 lambda base, g: {"rope_type": "default"}, "frequencies unchanged at every g (a test stub)"))
    yield fam
    FAMILIES.pop("identity-2")


def _model():
    return tiny_model(vocab_size=64, hidden_size=32, num_layers=2, num_heads=2, base_window=R, seed=1)


def _rotary_probe(model, seen):
    """Record at the rotary module what each training forward used: the frequency ratio θ/θ' and the ids."""
    rot = model.model.rotary_emb
    base = rot.inv_freq.detach().clone()

    def hook(module, args, kwargs):
        pos = args[1] if len(args) > 1 else kwargs["position_ids"]
        if module.training:
            seen.append((float(base[1] / module.inv_freq[1]), pos.detach().clone()))

    return rot.register_forward_pre_hook(hook, with_kwargs=True)


def test_the_stub_draws_through_sample(stub_scheme):
    cfg = AugmentConfig(base_window=R, train_len=R, g_max=4)
    d = sample_for_step(cfg, 0, 3, batch_size=2, scheme="every-other")
    assert d.scheme == "every-other" and d.scale.tolist() == [2, 2] and d.shift.tolist() == [0, 0]
    assert d.position_ids.tolist() == [EVEN, EVEN]
    assert float(d.scaled_positions.max()) == R - 1  # (2·15) / 2: inside the base window
    per_row = sample_for_step(AugmentConfig(R, R, 4, per_sample=True), 0, 3, batch_size=3, scheme="every-other")
    assert per_row.scale.tolist() == [2, 2, 2] and per_row.position_ids.tolist() == [EVEN] * 3
    assert stub_scheme.train_scale(cfg) == 2 and stub_scheme.sequence_scale(4) == 1


def test_the_loop_feeds_the_stubs_ids_and_g(stub_scheme):
    """train() with scheme="every-other": the model saw ids 0, 2, 4, … and inv_freq / 2 at both steps."""
    model, seen = _model(), []
    probe = _rotary_probe(model, seen)
    cfg = TrainConfig(steps=2, lr=1e-3, batch_size=2, grad_accum=1, seed=0, scheme="every-other", log_every=1,
                      augment=AugmentConfig(base_window=R, train_len=R, g_max=4, n_sink=2))
    r = train(model, PackedWindows(torch.arange(3000) * 7 % 64, R, 2, seed=5), cfg, progress=False)
    probe.remove()
    assert [(h["g"], h["t"]) for h in r.history] == [(2, 0), (2, 0)]
    assert len(seen) == 2
    for ratio, pos in seen:
        assert ratio == pytest.approx(2.0, rel=1e-6)
        assert pos.tolist() == [EVEN, EVEN]
    assert torch.equal(model.model.rotary_emb.inv_freq, _model().model.rotary_emb.inv_freq)  # restored


def test_the_trainer_callback_feeds_the_stubs_ids_and_g(stub_scheme, tmp_path):
    from transformers import Trainer, TrainingArguments

    from e2llm_lite.train.hf_trainer import E2Callback, E2DataCollator

    class Windows(torch.utils.data.Dataset):
        def __len__(self):
            return 8

        def __getitem__(self, i):
            return {"input_ids": [(7 * (i + k)) % 64 for k in range(R)]}

    model, seen = _model(), []
    cb = E2Callback(AugmentConfig(base_window=R, train_len=R, g_max=4, n_sink=2), seed=0, scheme="every-other")
    probe = _rotary_probe(model, seen)
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=2, max_steps=2, learning_rate=1e-3,
                             save_strategy="no", report_to=[], use_cpu=True, seed=3, disable_tqdm=True,
                             dataloader_num_workers=0)
    Trainer(model=model, args=args, train_dataset=Windows(), data_collator=E2DataCollator(max_length=R),
            callbacks=[cb]).train()
    probe.remove()
    assert [(r["step"], r["g"], r["t"]) for r in cb.log] == [(0, [2, 2], [0, 0]), (1, [2, 2], [0, 0])]
    assert len(seen) == 2
    for ratio, pos in seen:
        assert ratio == pytest.approx(2.0, rel=1e-6)
        assert pos.tolist() == [EVEN, EVEN]


def _stock(model, path):
    return transformers.AutoModelForCausalLM.from_pretrained(path, attn_implementation="sdpa").eval()


@torch.inference_mode()
def test_a_stub_family_through_rope_scale_and_the_export(stub_family, tmp_path):
    model = _model().eval()
    ids = torch.randint(0, 64, (1, 2 * R), generator=torch.Generator().manual_seed(0))
    plain = model(ids).logits
    with rope_scale(model, 2, family="identity-2"):
        assert current_scale(model) == 2.0 and current_family(model) == "identity-2"
        same = model(ids).logits
    torch.testing.assert_close(same, plain, rtol=0, atol=0)  # its frequencies: unchanged at g = 2
    with rope_scale(model, 2, family="linear"):
        assert (model(ids).logits - plain).abs().max() > 1e-4  # (so the check above can fail)
    assert hf_rope_parameters(RopeBase(1e4, 16, R), 2, "identity-2") == {"rope_type": "default"}
    save_for_scale(model, tmp_path / "x2", 2, family="identity-2")
    cfg = transformers.AutoConfig.from_pretrained(tmp_path / "x2")
    assert cfg.rope_parameters["rope_type"] == "default" and cfg.max_position_embeddings == 2 * R
    torch.testing.assert_close(_stock(model, tmp_path / "x2")(ids).logits, plain, atol=1e-6, rtol=0)


def test_the_loop_applies_a_stub_familys_frequencies(stub_family):
    """The same draws (g = 2 at every step), applied by the stub family: the rotary module keeps θ."""
    model, seen = _model(), []
    probe = _rotary_probe(model, seen)
    aug = AugmentConfig(base_window=R, train_len=R, g_max=4, n_sink=2, fixed_scale=2, family="identity-2")
    cfg = TrainConfig(steps=2, lr=1e-3, batch_size=2, seed=0, scheme="e2-fixed-scale", augment=aug)
    r = train(model, PackedWindows(torch.arange(3000) * 7 % 64, R, 2, seed=5), cfg, progress=False)
    probe.remove()
    assert [h["g"] for h in r.history] == [2, 2] and [ratio for ratio, _ in seen] == [1.0, 1.0]


def test_an_unknown_family_is_an_error_in_every_entry_point(tmp_path, capsys):
    model = _model()
    valid = "valid families: linear, ntk, yarn"
    with pytest.raises(ValueError, match=f"unknown RoPE scale family 'banana'; {valid}"):
        hf_rope_parameters(RopeBase(1e4, 16, R), 2, "banana")
    with pytest.raises(ValueError, match=valid):
        with rope_scale(model, 2, family="banana"):
            pass
    with pytest.raises(ValueError, match=valid):
        save_for_scale(model, tmp_path / "x", 2, family="banana")
    assert not (tmp_path / "x").exists()
    with pytest.raises(ValueError, match=valid):
        AugmentConfig(R, R, 4, family="banana")
    with pytest.raises(ValueError, match=valid):
        sample(AugmentConfig(R, R, 4), 0, family="banana")
    for argv in (["train", "--family", "banana"], ["eval", "--model", "x", "--lengths", "64", "--family", "banana"]):
        with pytest.raises(SystemExit) as e:
            cli.main(argv)
        err = capsys.readouterr().err
        assert e.value.code == 2 and "invalid choice: 'banana'" in err and "linear" in err and "yarn" in err


def test_the_harness_reads_the_registry(stub_family):
    pytest.importorskip("lm_eval")
    from e2llm_lite.eval.harness import E2LLM

    with pytest.raises(ValueError, match="family='banana' is not a RoPE scale family; valid: linear, ntk, yarn, identity-2"):
        E2LLM(pretrained=None, family="banana")


def test_a_registered_family_is_a_cli_choice(stub_family, capsys):
    """``--family`` offers what the registry holds when the parser is built."""
    with pytest.raises(SystemExit):
        cli.main(["train", "--family", "banana"])
    assert "'identity-2'" in capsys.readouterr().err
