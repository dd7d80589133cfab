"""The real-model study (``e2llm_lite.studies.real_model``): its pipeline on a tiny stand-in, its helpers on the
real SmolLM2-135M (tests marked ``real``, sharing the session fixture ``real_model`` of ``tests/conftest.py``)."""
import json
from dataclasses import asdict, replace

import pytest
import torch

from e2llm_lite.studies import real_model as study  # `real_model` is conftest's fixture of the real SmolLM2
from e2llm_lite.studies.real_model import measure
from e2llm_lite.studies.real_model import run as real_run


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    """A 2-layer Llama (window 256) with a small BPE trained here, saved as a Hugging Face folder."""
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers, decoders

    from e2llm_lite import data as D
    from e2llm_lite.eval import retrieval as Rv

    files = sorted(D.stdlib_root().glob("*.py"))[:30]
    texts = [f.read_text(encoding="utf-8") for f in files] + [Rv.LONGLORA_TASK, Rv.LONGLORA_GARBAGE, Rv.LONGLORA_QUESTION] * 20
    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=600, special_tokens=["<eos>"],
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = transformers.PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<eos>")
    cfg = transformers.LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                   num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256,
                                   eos_token_id=tok.eos_token_id, tie_word_embeddings=True)
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny_real")
    transformers.LlamaForCausalLM(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def _schedule(folder):
    return replace(study.SCHEDULES["smoke"], model=str(folder), train_len=192, pk_length=256, ppl_lengths=(128, 256),
                   beyond_length=512, curve_samples=1)


def test_pipeline_writes_results_figures_report_and_resumes(tiny_folder, tmp_path, monkeypatch):
    s = _schedule(tiny_folder)
    run = study.RealRun(s, out=tmp_path / "out", work=tmp_path / "work", progress=False, log=lambda *a: None)
    res = run.run_all()
    path = tmp_path / "out" / "results" / "real" / "real_profile.json"
    assert json.loads(path.read_text()) == json.loads(json.dumps(res))
    assert set(res["models"]) == {"base", "base-yarn", "e2", "pi", "e2-yarn"}
    assert res["models"]["e2-yarn"]["family"] == "yarn" and res["models"]["e2"]["family"] == "linear"
    for m in res["models"].values():
        assert set(m["ppl"]) == {"128", "256"} and set(m["ppl"]["256"]) == {"1", "4"}
        assert all(v > 1 for row in m["ppl"].values() for v in row.values())
        assert {g: v["n"] for g, v in m["passkey"]["by_g"].items()} == {"1": 2, "4": 2}
    e2 = res["models"]["e2"]
    assert e2["steps"] == 2 and [c["step"] for c in e2["curve"]] == [1, 2] and "passkey_g4" in e2["curve"][0]
    assert res["models"]["pi"]["curve"] == []
    assert {x["length"] for w in ("base", "e2", "pi", "e2-yarn") for x in res["beyond"][w]} == {512}
    assert {x["family"] for x in res["beyond"]["e2-yarn"]} == {"yarn"}
    # past the window: every model at long_ppl_g, the base also at g = 1; zero-shot yarn is not linear at g > 1
    long = res["long"]
    assert set(long["base"]["ppl"]) == {"1", "2"} and all(set(long[k]["ppl"]) == {"2"} for k in ("e2", "pi", "e2-yarn"))
    assert long["base-yarn"]["ppl"]["2"] != long["base"]["ppl"]["2"]
    # the zero-shot yarn base equals the base at g = 1 (no scaling) and differs at g = 4
    by, b0 = res["models"]["base-yarn"]["ppl"]["256"], res["models"]["base"]["ppl"]["256"]
    assert by["1"] == b0["1"] and by["4"] != b0["4"]
    report = (tmp_path / "out" / "figures" / "REPORT_real.md").read_text()
    b = res["models"]["base"]["ppl"]["256"]
    assert "| base (zero-shot g) | " in report and f"{b['4']:.2f}" in report  # numbers come from the results
    for png in ("real_curve.png", "real_before_after.png"):
        assert (tmp_path / "out" / "figures" / png).read_bytes()[:4] == b"\x89PNG"
    # a second call finds every phase finished: no training, the same results
    monkeypatch.setattr(real_run, "finetune", lambda *a, **k: pytest.fail("trained again"))
    monkeypatch.setattr(real_run, "beyond_window", lambda *a, **k: pytest.fail("beyond-window samples again"))
    again = study.RealRun(s, out=tmp_path / "out", work=tmp_path / "work", progress=False, log=lambda *a: None).run_all()
    assert again["models"] == res["models"] and again["beyond"] == res["beyond"]
    # a work folder belongs to one schedule
    with pytest.raises(ValueError, match="belongs to another schedule"):
        study.RealRun(replace(s, steps=3), out=tmp_path / "out", work=tmp_path / "work", log=lambda *a: None)


def test_interrupted_finetune_resumes_exactly(tiny_folder, tmp_path):
    """Two calls of 2 + 2 steps end with the same adapter weights as one call of 4 steps."""
    from e2llm_lite.pretrained import load_pretrained

    s = replace(_schedule(tiny_folder), steps=4, curve_every=0, checkpoint_every=2)
    base, tok = load_pretrained(str(tiny_folder))
    data = real_run.train_data(tok, s)
    full, _ = real_run.finetune(base, tok, s, "e2", tmp_path / "a", progress=False, data=data)
    base, _ = load_pretrained(str(tiny_folder))
    real_run.finetune(base, tok, replace(s, steps=2), "e2", tmp_path / "b", progress=False, data=data)
    base, _ = load_pretrained(str(tiny_folder))
    resumed, res = real_run.finetune(base, tok, s, "e2", tmp_path / "b", progress=False, data=data)
    assert res.resumed_from == 2 and res.step == 4
    want = {n: p for n, p in full.named_parameters() if "lora_" in n}
    got = dict(resumed.named_parameters())
    assert want and all(torch.equal(want[n], got[n]) for n in want)


def test_bad_arguments():
    with pytest.raises(ValueError, match="steps must be an integer >= 0"):
        study.RealSchedule(steps=-1)
    with pytest.raises(ValueError, match="HH:MM"):
        real_run._deadline("25:99")
    with pytest.raises(ValueError, match="scheme must be 'e2' or 'pi'"):
        real_run.finetune(None, None, study.SCHEDULES["smoke"], "none")
    with pytest.raises(ValueError, match="family must be 'linear' for scheme 'pi'"):
        real_run.finetune(None, None, study.SCHEDULES["smoke"], "pi", family="yarn")
    with pytest.raises(ValueError, match="banana"):
        study.RealSchedule(families=("banana",))


def test_yarn_tables_equal_a_direct_rope_scale(tiny_folder):
    """ppl_table / passkey_table with family='yarn' are the evaluators run inside rope_scale(model, g, 'yarn')."""
    from e2llm_lite import hf
    from e2llm_lite.eval import perplexity as P
    from e2llm_lite.pretrained import load_pretrained

    model, tok = load_pretrained(str(tiny_folder))
    docs = study.eval_docs(tok, 256, 1)[0]
    t = measure.ppl_table(model, docs, (1, 4), (256,), family="yarn")["256"]
    with hf.rope_scale(model, 4.0, family="yarn"):
        want = P.perplexity(model, docs, window=256, g=1.0).ppl
    assert t["4"] == round(want, 3)
    assert t["1"] == measure.ppl_table(model, docs, (1,), (256,))["256"]["1"]  # g = 1: no family applies
    assert t["4"] != measure.ppl_table(model, docs, (4,), (256,))["256"]["4"]


def test_report_prose_follows_the_numbers(tmp_path):
    def model(ppl1, ppl8, pk8, **kw):
        return {"ppl": {"2048": {"1": ppl1, "8": ppl8}},
                "passkey": {"by_g": {"1": {"exact": 5, "n": 5}, "8": {"exact": pk8, "n": 5}}}, **kw}

    res = {"schedule": {**asdict(study.SCHEDULES["real"]), "steps": 7}, "machine": {"cpu_count": 2, "torch_threads": 1},
           "models": {"base": model(5.0, 100.0, 0), "e2": model(6.0, 20.0, 3, steps=7), "pi": model(5.5, 30.0, 1, steps=7)}}
    text = open(study.write_report(res, tmp_path)).read()
    assert "Zero-shot scaling breaks the base" in text and "×20.0" in text
    assert "**E² lowers the damage at every g > 1.**" in text and "g = 8: 100.00 → 20.00" in text
    assert "+20 % relative to the base" in text
    assert "lower perplexity at 1 of 2 scales (g = 8)" in text
    # E² over YaRN beside E² (linear): the short-context ratio and its verdict come from the numbers
    res["models"]["e2-yarn"] = model(5.1, 15.0, 4, steps=7, family="yarn")
    res["models"]["base-yarn"] = model(5.0, 9.0, 2, family="yarn")
    text = open(study.write_report(res, tmp_path)).read()
    assert "1.200 (linear) vs 1.020 (E²-YaRN) — E²-YaRN closes the gap" in text
    assert "| E²-YaRN | 5.10 | 15.00 | 5/5 | 4/5 |" in text and "| base + YaRN (zero-shot g) |" in text
    res["models"]["e2-yarn"] = model(5.5, 15.0, 4, steps=7, family="yarn")
    assert "1.100 (E²-YaRN) — E²-YaRN narrows the gap" in open(study.write_report(res, tmp_path)).read()
    res["models"]["e2"] = model(6.0, 150.0, 0, steps=7)
    text = open(study.write_report(res, tmp_path)).read()
    assert "**E² does not lower it.**" in text


# --- on the real model -------------------------------------------------------------------------------


@pytest.mark.real
def test_few_real_finetune_steps_train_only_the_adapter(real_model):
    """Notebook 03's CPU path: a few E² steps on SmolLM2 change the LoRA weights and nothing else."""
    import copy

    _, model, tok, _ = real_model
    s = replace(study.SCHEDULES["smoke"], steps=1, train_len=96, curve_every=0, train_chars=20_000)
    base = copy.deepcopy(model)
    frozen = {n: p.clone() for n, p in model.named_parameters()}
    lora, res = real_run.finetune(base, tok, s, "e2", None, progress=False)
    assert res.step == 1 and all(torch.isfinite(torch.tensor(h["loss"])) for h in res.history)
    named = dict(lora.named_parameters())
    assert any(float(p.abs().sum()) > 0 for n, p in named.items() if "lora_B" in n)  # B starts at 0
    for n, p in named.items():
        if "lora_" not in n:
            key = n.replace("base_model.model.", "").replace(".base_layer", "")
            assert torch.equal(p, frozen[key]), n


@pytest.mark.real
def test_live_demo_with_the_shipped_adapters(real_model):
    """Both shipped adapters load onto the real model by name; each run is evaluated with its own family and the
    demo's base numbers are the base model's."""
    import copy

    from e2llm_lite import hf
    from e2llm_lite.eval import perplexity as P
    from e2llm_lite.train import loading

    _, model, tok, _ = real_model
    m = loading.load_adapter(copy.deepcopy(model), study.SHIPPED_ADAPTERS["e2"][0], adapter_name="e2")
    m.load_adapter(str(study.SHIPPED_ADAPTERS["e2-yarn"][0]), adapter_name="e2-yarn")
    res = study.live_demo(m, tok, gs=(1, 8), n_passkey=1, passkey_length=300, ppl_length=256, progress=False,
                       runs=("e2", "e2-yarn"))
    doc = study.eval_docs(tok, 256, 1)[0][0]
    assert res["ppl"]["base"]["8"] == pytest.approx(P.perplexity(model, [doc], window=256, g=8.0).ppl, rel=1e-4)
    m.set_adapter("e2-yarn")
    with hf.rope_scale(m, 8.0, family="yarn"):
        want = P.perplexity(m, [doc], window=256, g=1.0).ppl
    assert res["ppl"]["e2-yarn"]["8"] == pytest.approx(want, rel=1e-4)
    assert len({res["ppl"][w]["8"] for w in ("base", "e2", "e2-yarn")}) == 3
    assert set(res["passkey"]) == {"base", "e2", "e2-yarn"} and res["exact"]["base"] in (0, 1)


def test_shipped_results_match_the_shipped_adapters():
    """The package carries the real profile's results (notebooks read them) for every shipped adapter's run."""
    res = study.shipped_results()
    assert set(study.SHIPPED_ADAPTERS) <= set(res["models"]) and "base" in res["models"]
    for who, (folder, family) in study.SHIPPED_ADAPTERS.items():
        assert res["models"][who]["family"] == family and res["models"][who]["steps"] == res["schedule"]["steps"]
        assert json.loads((folder / "training.json").read_text())["schedule"]["steps"] == res["schedule"]["steps"]
        assert "loss_curve" not in res["models"][who]
    assert all(v["n"] == res["models"]["base"]["passkey"]["by_g"]["1"]["n"]
               for m in res["models"].values() for v in m["passkey"]["by_g"].values())
