"""Tests for e2llm_lite.train.hf_trainer: E² in a stock transformers.Trainer (collator + callback) and a plain loop."""
import pytest
import torch

from e2llm_lite import augment
from e2llm_lite.augment import AugmentConfig, e2_position_ids
from e2llm_lite.models import tiny_model
from e2llm_lite.train.hf_trainer import E2Callback, E2DataCollator, E2Hook

R = 16
AUG = AugmentConfig(base_window=R, train_len=R, g_max=4, n_sink=2)


def _model():
    return tiny_model(vocab_size=64, hidden_size=32, num_layers=2, num_heads=2, base_window=R, seed=1)


class Windows(torch.utils.data.Dataset):
    """Fixed token windows of a periodic stream (learnable, so the loss must fall)."""

    def __init__(self, n=64):
        stream = torch.arange(4000) * 7 % 64
        self.rows = [stream[i * 5 : i * 5 + R] for i in range(n)]

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return {"input_ids": self.rows[i].tolist()}


def _rotary_probe(model, seen):
    """Record, at the rotary module itself, the frequency scale and the position ids each forward used."""
    rot = model.model.rotary_emb
    base = rot.inv_freq.detach().clone()

    def hook(module, args, kwargs):
        pos = args[1] if len(args) > 1 else kwargs["position_ids"]
        if module.training or torch.is_grad_enabled():
            seen.append((float(base[1] / module.inv_freq[1]), pos[0].detach().clone()))

    return rot.register_forward_pre_hook(hook, with_kwargs=True)


def test_trainer_with_worker_processes_follows_seed_and_step(tmp_path):
    from transformers import Trainer, TrainingArguments

    model, seen, cb = _model(), [], E2Callback(AUG, seed=7)
    probe = _rotary_probe(model, seen)
    args = TrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=2, gradient_accumulation_steps=2, max_steps=10,
        learning_rate=3e-3, lr_scheduler_type="constant", adam_beta2=0.95, dataloader_num_workers=2,
        logging_steps=1, save_strategy="no", report_to=[], use_cpu=True, seed=3, disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=args, train_dataset=Windows(), data_collator=E2DataCollator(max_length=R),
                      callbacks=[cb])
    trainer.train()
    probe.remove()
    # every micro-batch of step i used the draw of (seed, i): g in inv_freq, m + t in the position ids
    expect = [augment.sample_for_step(AUG, 7, i, 1, "e2") for i in range(10)]
    assert [(r["step"], r["micro"]) for r in cb.log] == [(i, k) for i in range(10) for k in range(2)]
    assert [(r["g"][0], r["t"][0]) for r in cb.log] == [(int(d.scale[0]), int(d.shift[0])) for d in expect for _ in range(2)]
    assert len(seen) == 20 and len({d.uniform_scale for d in expect}) > 1  # the test can tell steps apart
    for (ratio, pos), d in zip(seen, [d for d in expect for _ in range(2)]):
        assert ratio == pytest.approx(int(d.scale[0]), rel=1e-6)
        assert torch.equal(pos, e2_position_ids(R, int(d.shift[0]), AUG.n_sink))
    # the RoPE buffers are restored after training; the loss went down
    assert torch.equal(model.model.rotary_emb.inv_freq, _model().model.rotary_emb.inv_freq)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(losses) == 10 and sum(losses[-3:]) / 3 < sum(losses[:3]) / 3


def test_hook_per_sample_rows_and_plain_loop():
    cfg = AugmentConfig(base_window=R, train_len=R, g_max=4, n_sink=2, per_sample=True)
    model = _model()
    hook = E2Hook(model, cfg, seed=5, rank=1, num_processes=2)  # this process holds rows 3..5 of 6
    batch = E2DataCollator()([{"input_ids": list(range(R))} for _ in range(3)])
    seen = []
    h2 = model.register_forward_pre_hook(lambda m, a, kw: seen.append(kw["position_ids"].clone()), with_kwargs=True)
    model.train()
    with hook.step_scope(4):
        for micro in range(2):
            model(**batch).loss.backward()
    h2.remove()
    for micro in range(2):
        d = augment.sample_for_step(cfg, 5, 4, 6, "e2", micro=micro)
        want = d.position_ids[3:].float() / d.scale[3:, None].float()
        assert torch.equal(seen[micro], want)
        assert hook.log[micro]["g"] == d.scale[3:].tolist()
    # outside a step and in eval mode nothing is touched
    model.eval()
    with hook.step_scope(0):
        pass
    n = len(hook.log)
    model(**batch)
    assert len(hook.log) == n
    hook.remove()


def test_collator_pads_and_masks():
    b = E2DataCollator(pad_token_id=0)([{"input_ids": [5, 6, 7]}, {"input_ids": torch.tensor([8, 9])}])
    assert b["input_ids"].tolist() == [[5, 6, 7], [8, 9, 0]]
    assert b["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert b["labels"].tolist() == [[5, 6, 7], [8, 9, -100]]
    assert b["position_ids"].tolist() == [[0, 1, 2], [0, 1, 2]]
    with pytest.raises(ValueError, match="max_length=2"):
        E2DataCollator(max_length=2)([{"input_ids": [1, 2, 3]}])


def test_hook_rejects_bad_input():
    with pytest.raises(ValueError, match="scheme"):
        E2Hook(_model(), AUG, scheme="yarn-e2")
    with pytest.raises(ValueError, match="rank"):
        E2Hook(_model(), AUG, rank=2, num_processes=2)
