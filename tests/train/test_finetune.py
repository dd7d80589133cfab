"""`e2llm-lite train` / train_cli.finetune end to end on a tiny Llama, streamed data, bad inputs."""
import json
import os
import sysconfig

import pytest
import torch

from e2llm_lite import data as data_mod
from e2llm_lite.cli import main
from e2llm_lite.models import tiny_model
from e2llm_lite.train.loop import TrainConfig
from e2llm_lite.train.finetune import FinetuneConfig, StreamWindows, finetune

L = 32
CORPUS = os.path.join(sysconfig.get_paths()["stdlib"], "json")  # a few real .py files, offline


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny")
    tiny_model(hidden_size=32, num_layers=2, num_heads=4, vocab_size=256, base_window=L).save_pretrained(
        d, safe_serialization=True)
    return str(d)


def test_defaults_are_the_papers_7b_recipe():
    c = FinetuneConfig()
    assert (c.model, c.seq_len, c.g_max, c.n_sink, c.lr, c.global_batch) == (
        "meta-llama/Llama-2-7b-hf", 4096, 20, 4, 1e-5, 16)
    assert c.trust_remote_code is False and c.scheme == "e2"
    assert TrainConfig().betas == (0.9, 0.95)


def test_cli_end_to_end(tiny_dir, tmp_path, capsys):
    import transformers

    out = tmp_path / "run"
    rc = main(["train", "--model", tiny_dir, "--mode", "lora", "--tokenizer", "bytes", "--data", CORPUS,
               "--seq-len", str(2 * L), "--g-max", "8", "--steps", "3", "--lr", "1e-3", "--global-batch", "2",
               "--micro-batch", "1", "--warmup-steps", "1", "--out-dir", str(out), "--export-g", "4", "--no-progress"])
    assert rc == 0
    rec = json.loads((out / "run.json").read_text())
    assert rec["steps"] == 3 and rec["mode"] == "lora" and rec["optimizer"] == "adamw" and rec["base_window"] == L
    assert 0 < rec["trainable"] < rec["total"]
    assert "final loss" in capsys.readouterr().out
    merged = out / "export" / "merged-g4"
    cfg = json.loads((merged / "config.json").read_text())
    assert cfg["max_position_embeddings"] == 4 * L
    # the export reloads with stock transformers and the project's tokenizer note
    from e2llm_lite.train.finetune import load_tokenizer_for

    tok = load_tokenizer_for(str(merged))
    assert tok.vocab_size == 256
    m = transformers.AutoModelForCausalLM.from_pretrained(merged, use_safetensors=True)
    ids = torch.tensor([tok.encode("import json\n" * 10)])
    assert m(input_ids=ids).logits.shape == (1, ids.shape[1], 256)
    # a second call with more steps resumes from the checkpoint
    rc = main(["train", "--model", tiny_dir, "--mode", "lora", "--tokenizer", "bytes", "--data", CORPUS,
               "--seq-len", str(2 * L), "--g-max", "8", "--steps", "4", "--lr", "1e-3", "--global-batch", "2",
               "--warmup-steps", "1", "--out-dir", str(out), "--export-g", "0", "--no-progress"])
    rec = json.loads((out / "run.json").read_text())
    assert rc == 0 and rec["resumed_from"] == 3 and rec["steps"] == 4


def test_finetune_is_reproducible_and_resumes_exactly(tiny_dir, tmp_path):
    """Same seed, same adapters (LoRA init included); 2 steps + resume to 4 == 4 straight, bit for bit."""
    from safetensors.torch import load_file

    kw = dict(model=tiny_dir, mode="lora", tokenizer="bytes", data=CORPUS, seq_len=2 * L, g_max=8, lr=2e-3,
              warmup_steps=1, global_batch=2, export_g=None, progress=False, checkpoint_every=1)
    finetune(FinetuneConfig(steps=4, out_dir=str(tmp_path / "a"), **kw))
    finetune(FinetuneConfig(steps=2, out_dir=str(tmp_path / "b"), **kw))
    res = finetune(FinetuneConfig(steps=4, out_dir=str(tmp_path / "b"), **kw))
    assert res["summary"]["resumed_from"] == 2
    a = load_file(str(tmp_path / "a" / "checkpoints" / "last" / "trainable.safetensors"))
    b = load_file(str(tmp_path / "b" / "checkpoints" / "last" / "trainable.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_full_mode_pi_scheme(tiny_dir, tmp_path):
    res = finetune(FinetuneConfig(model=tiny_dir, mode="full", scheme="pi", fixed_scale=2, tokenizer="bytes",
                                  data=CORPUS, seq_len=2 * L, steps=2, global_batch=2, lr=1e-3,
                                  out_dir=str(tmp_path), export_g=None, progress=False))
    assert {r["g"] for r in res["result"].history} == {2} and res["summary"]["trainable"] == res["summary"]["total"]


def test_stream_windows_consecutive_and_restartable(tmp_path):
    datasets = pytest.importorskip("datasets")
    files = []
    for i in range(3):
        p = tmp_path / f"doc{i}.txt"
        p.write_text(f"document {i}: " + "abcdefghij" * (5 + i), encoding="utf-8")
        files.append(str(p))

    def make_iter():
        return datasets.load_dataset("text", data_files=files, split="train", streaming=True, sample_by="document")

    tok = data_mod.ByteTokenizer()
    sw = StreamWindows(make_iter, tok, seq_len=16, batch_size=2)
    expected = []
    for row in make_iter():
        expected += tok.encode(row["text"]) + [tok.eos_id]
    b2 = sw.get_batch(2)
    assert sw.position == 6
    b0 = sw.get_batch(0)  # going back restarts the stream
    assert torch.equal(b0.reshape(-1), torch.tensor(expected[:32]))
    assert torch.equal(b2.reshape(-1), torch.tensor(expected[64:96]))
    assert torch.equal(sw.get_batch(2), b2)
    with pytest.raises(ValueError, match="ran out"):
        sw.get_batch(100)


def test_jsonl_mix_is_streamed_in_order(tmp_path):
    from e2llm_lite.train.finetune import build_data

    rows = [{"text": f"row {i} " + "xyz" * (3 + i), "source": "pile" if i % 2 else "sharegpt"} for i in range(6)]
    path = tmp_path / "mix.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    tok = data_mod.ByteTokenizer()
    batches = build_data(FinetuneConfig(data=str(path), seq_len=8, global_batch=2, micro_batch=2), tok)
    assert isinstance(batches, StreamWindows)
    stream = sum((tok.encode(r["text"]) + [tok.eos_id] for r in rows), [])
    assert torch.equal(batches.get_batch(1).reshape(-1), torch.tensor(stream[16:32]))


@pytest.mark.parametrize("kw,needle", [
    ({"mode": "8bit"}, "'8bit'"), ({"global_batch": 16, "micro_batch": 3}, "micro_batch=3"),
    ({"seq_len": 0}, "seq_len=0"), ({"scheme": "yarn"}, "'yarn'"), ({"optimizer": "lion"}, "'lion'"),
    ({"export_g": 0}, "export_g"),
])
def test_bad_inputs(kw, needle):
    with pytest.raises(ValueError, match="valid|must") as e:
        FinetuneConfig(**kw)
    assert needle in str(e.value)


def test_bad_inputs_that_need_the_model(tiny_dir, tmp_path):
    base = dict(model=tiny_dir, tokenizer="bytes", data=CORPUS, steps=1, global_batch=1, out_dir=str(tmp_path),
                export_g=None, progress=False, g_max=4)
    with pytest.raises(ValueError, match=r"R=1024.*L\*G_max"):  # R past the largest window L·G_max
        finetune(FinetuneConfig(seq_len=1024, **base))
    with pytest.raises(ValueError, match="2048 ids.*vocab_size is 256"):
        finetune(FinetuneConfig(seq_len=L, **{**base, "tokenizer": "bpe"}))
    with pytest.raises(ValueError, match="preset|tokenizer|bytes"):
        finetune(FinetuneConfig(seq_len=L, **{**base, "tokenizer": None}))
