"""`e2llm-lite train --family ntk|yarn`: the loop applies g with the family, run.json and the export record it."""
import json
import os
import sysconfig

import pytest
import torch

from e2llm_lite import hf
from e2llm_lite.cli import main
from e2llm_lite.models import tiny_model
from e2llm_lite.train.finetune import FinetuneConfig, finetune

L = 32
CORPUS = os.path.join(sysconfig.get_paths()["stdlib"], "json")  # a few real .py files, offline


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny")
    tiny_model(hidden_size=32, num_layers=2, num_heads=4, vocab_size=256, base_window=L, initializer_range=0.2).save_pretrained(
        d, safe_serialization=True)
    return str(d)


def _argv(tiny_dir, out, *more) -> list[str]:
    return ["train", "--model", tiny_dir, "--mode", "lora", "--tokenizer", "bytes", "--data", CORPUS,
            "--seq-len", str(2 * L), "--g-max", "4", "--steps", "2", "--lr", "1e-3", "--global-batch", "1",
            "--warmup-steps", "1", "--out-dir", str(out), "--no-progress", *more]


def test_cli_yarn_trains_records_and_exports_yarn(tiny_dir, tmp_path, capsys):
    import transformers
    from safetensors.torch import load_file

    out = tmp_path / "yarn"
    assert main(_argv(tiny_dir, out, "--family", "yarn", "--export-g", "2")) == 0
    rec = json.loads((out / "run.json").read_text())
    assert rec["family"] == "yarn" and rec["config"]["family"] == "yarn" and rec["steps"] == 2
    assert rec["export"]["family"] == "yarn"
    assert "(yarn)" in capsys.readouterr().out
    # the export's config is yarn at g = 2 over the base window L, and stock transformers reproduces the hook
    merged = out / "export" / "merged-g2"
    cfg = json.loads((merged / "config.json").read_text())
    rope = cfg.get("rope_parameters") or cfg.get("rope_scaling")
    assert rope["rope_type"] == "yarn" and rope["factor"] == 2.0 and rope["original_max_position_embeddings"] == L
    assert cfg["max_position_embeddings"] == 2 * L
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(merged, use_safetensors=True).eval()
    live = transformers.AutoModelForCausalLM.from_pretrained(tiny_dir, use_safetensors=True).eval()  # base config
    live.load_state_dict(load_file(str(merged / "model.safetensors")))  # merged weights, unscaled RoPE
    ids = torch.randint(0, 256, (1, 2 * L), generator=torch.Generator().manual_seed(0))
    with torch.no_grad(), hf.rope_scale(live, 2, family="yarn", base_window=L):
        ref = live(input_ids=ids).logits
    with torch.no_grad():
        torch.testing.assert_close(reloaded(input_ids=ids).logits, ref, rtol=1e-5, atol=1e-5)

    # the draws are the same for every family, the frequencies are not: step 1 (weights not yet updated) differs
    lin = tmp_path / "linear"
    assert main(_argv(tiny_dir, lin, "--export-g", "0")) == 0
    rec_lin = json.loads((lin / "run.json").read_text())
    assert rec_lin["family"] == "linear" and rec_lin["export"] == {}
    steps_lin = torch.load(lin / "checkpoints" / "last" / "state.pt", weights_only=True)["history"]
    steps_yarn = torch.load(out / "checkpoints" / "last" / "state.pt", weights_only=True)["history"]
    assert [r["g"] for r in steps_lin] == [r["g"] for r in steps_yarn] and steps_lin[0]["g"] > 1
    assert steps_lin[0]["loss"] != pytest.approx(steps_yarn[0]["loss"], rel=1e-3)


def test_pi_with_ntk_trains_at_the_fixed_scale(tiny_dir, tmp_path):
    res = finetune(FinetuneConfig(model=tiny_dir, mode="lora", scheme="pi", fixed_scale=2, family="ntk",
                                  tokenizer="bytes", data=CORPUS, seq_len=2 * L, steps=1, global_batch=1, lr=1e-3,
                                  out_dir=str(tmp_path), export_g=None, progress=False))
    assert {r["g"] for r in res["result"].history} == {2} and res["summary"]["family"] == "ntk"


def test_resume_with_another_family_is_refused(tiny_dir, tmp_path, capsys):
    assert main(_argv(tiny_dir, tmp_path, "--steps", "1", "--export-g", "0")) == 0
    capsys.readouterr()
    assert main(_argv(tiny_dir, tmp_path, "--family", "yarn", "--export-g", "0")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "trained with family='linear'" in err[0] and "--family linear" in err[0]


def test_bad_family_names_the_value_and_the_choices(capsys):
    with pytest.raises(ValueError, match="'banana'; valid families: linear, ntk, yarn"):
        FinetuneConfig(family="banana")
    with pytest.raises(ValueError, match=r"'yarn' is a scale family: family='yarn' \(--family yarn\)"):
        FinetuneConfig(scheme="yarn")
    with pytest.raises(SystemExit) as e:
        main(["train", "--family", "banana"])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1
    assert "'banana'" in err[0] and all(f in err[0] for f in ("linear", "ntk", "yarn"))
