"""`e2llm-lite check-export`: what transformers, vLLM and llama.cpp compute from an export, against hand-derived values.

The engines' rules are those of vLLM 0.34.0 / 0.11.0 and of the llama.cpp vendored in llama-cpp-python
0.3.36 (see e2llm_lite/engines.py). Exports of every family and g must agree with stock transformers in
every engine, and still reload bit for bit; hand-written configs that an engine reads differently must
be flagged with the engine's own numbers.
"""
import json
import math

import pytest
import torch
import transformers

from e2llm_lite import cli, engines
from e2llm_lite.hf import rope_scale, save_for_scale
from e2llm_lite.models import tiny_model

L, THETA, HEAD = 64, 10000.0, 16  # window, base, head_dim (hidden 32 / 2 heads)


@pytest.fixture(scope="module")
def model():
    return tiny_model(vocab_size=256, hidden_size=32, num_layers=2, num_heads=2, base_window=L, seed=1)


def _export(model, folder, g, family):
    save_for_scale(model, folder, g, family=family)
    return folder


def _rewrite(folder, **changes):
    cfg = json.loads((folder / "config.json").read_text())
    for k, v in changes.items():
        if v is None:
            cfg.pop(k, None)
        else:
            cfg[k] = v
    (folder / "config.json").write_text(json.dumps(cfg))
    return folder


def _mscale(g):
    return 0.1 * math.log(g) + 1.0  # YaRN's sqrt(1/t), arXiv 2309.00071 Eq. 22


# --- exports: every engine agrees with transformers -------------------------------------------------


@pytest.mark.parametrize("g", [2, 4])
@pytest.mark.parametrize("family", ["linear", "ntk", "yarn"])
@torch.inference_mode()
def test_exports_agree_in_every_engine_and_reload_bit_exactly(model, family, g, tmp_path):
    folder = _export(model, tmp_path / f"{family}{g}", g, family)
    res = engines.check(folder)
    assert res["disagreements"] == {"vllm": [], "vllm-0.11": [], "llama.cpp": []}
    r = res["readings"]
    assert {e: r[e].max_len for e in r} == dict.fromkeys(engines.ENGINES, g * L)  # every engine serves g L
    theta = THETA * g ** (HEAD / (HEAD - 2)) if family == "ntk" else THETA  # NTK base b g^{d/(d-2)}
    for e, x in r.items():
        assert x.rope_theta == pytest.approx(theta, rel=1e-6), e
        assert x.factor == (1.0 if family == "ntk" else g), e
        assert x.attention_scaling == pytest.approx(_mscale(g) if family == "yarn" else 1.0, rel=1e-6), e
        assert x.original_max == (L if family == "yarn" else None), e
        assert len(x.inv_freq) == HEAD // 2
    if family == "linear":  # every pair slowed by g
        assert r["vllm"].inv_freq == pytest.approx([THETA ** (-2 * j / HEAD) / g for j in range(HEAD // 2)], rel=1e-6)
    # what the converter writes (conversion/base.py), hand-derived per family
    meta = engines.gguf_rope_metadata(folder)
    want = {"general.architecture": "llama", "llama.context_length": g * L, "llama.rope.dimension_count": HEAD,
            "llama.rope.freq_base": pytest.approx(theta)}
    if family == "linear":
        want.update({"llama.rope.scaling.type": "linear", "llama.rope.scaling.factor": g})
    if family == "yarn":
        want.update({"llama.rope.scaling.type": "yarn", "llama.rope.scaling.factor": g,
                     "llama.rope.scaling.original_context_length": L, "llama.rope.scaling.yarn_beta_fast": 32.0,
                     "llama.rope.scaling.yarn_beta_slow": 1.0})
    assert meta == want
    # the keys the export adds for engines on the transformers-4 config, and stock transformers unchanged
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["rope_theta"] == pytest.approx(theta)
    assert cfg.get("rope_scaling") == ({k: v for k, v in cfg["rope_parameters"].items() if k != "rope_theta"}
                                       if family != "ntk" else None)
    assert cfg.get("max_seq_len") == (L if family == "linear" else None)  # vLLM: max_seq_len x factor = g L
    ids = torch.randint(0, 256, (1, g * L), generator=torch.Generator().manual_seed(g))
    with rope_scale(model, g, family=family, base_window=L):
        hooked = model(ids).logits
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(folder, attn_implementation="sdpa").eval()
    assert reloaded.config.rope_parameters == transformers.AutoConfig.from_pretrained(folder).rope_parameters
    assert torch.equal(reloaded(ids).logits, hooked)  # bit for bit


def test_the_tokenizer_limit_is_raised_to_the_served_length(model, tmp_path):
    from e2llm_lite.eval.harness import hf_tokenizer
    from e2llm_lite.models import BASE_ASSETS

    tok = hf_tokenizer(BASE_ASSETS)
    tok.model_max_length = L  # vLLM caps its length at this (tokenizer_config.json)
    folder = tmp_path / "yarn4"
    save_for_scale(model, folder, 4, tokenizer=tok, family="yarn")
    assert json.loads((folder / "tokenizer_config.json").read_text())["model_max_length"] == 4 * L
    assert engines.read_vllm(folder).max_len == 4 * L
    tok_cfg = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**tok_cfg, "model_max_length": L}))
    assert engines.read_vllm(folder).max_len == L  # yarn: no factor on top of the cap
    assert engines.check(folder)["disagreements"]["vllm"] == [f"maximum length {L} vs {4 * L}"]
    # `train --export-g` (loading.export) saves the tokenizer after save_for_scale: the same keys
    from e2llm_lite.train.loading import ModeConfig, export

    merged = export(model, tmp_path / "run", g=2, tokenizer=tok, cfg=ModeConfig(mode="full"), family="linear")["merged"]
    assert json.loads((tmp_path / "run" / "merged-g2" / "tokenizer_config.json").read_text())["model_max_length"] == 2 * L
    res = engines.check(merged)
    assert not any(res["disagreements"].values()) and res["readings"]["vllm"].max_len == 2 * L


# --- what the checker flags ------------------------------------------------------------------------------


@pytest.mark.parametrize("g", [2, 4])
def test_a_rope_parameters_only_config_is_flagged_for_each_engine(model, g, tmp_path):
    """What transformers 5 alone writes: vLLM multiplies a linear factor into g L; vLLM 0.11 sees no scaling."""
    lin = _rewrite(_export(model, tmp_path / "lin", g, "linear"), rope_scaling=None, rope_theta=None, max_seq_len=None)
    res = engines.check(lin)
    assert res["readings"]["vllm"].max_len == g * g * L  # max_position_embeddings (g L) x factor g
    assert res["disagreements"]["vllm"] == [f"maximum length {g * g * L} vs {g * L}"]
    old = res["readings"]["vllm-0.11"]
    assert (old.rope_type, old.factor, old.max_len) == ("default", 1.0, g * L)
    assert res["disagreements"]["vllm-0.11"][0].startswith("frequencies differ")
    assert res["disagreements"]["llama.cpp"] == []  # this converter reads rope_parameters first
    yarn = _rewrite(_export(model, tmp_path / "yarn", g, "yarn"), rope_scaling=None, rope_theta=None)
    flags = engines.check(yarn)["disagreements"]
    assert flags["vllm"] == [] and flags["llama.cpp"] == []
    assert flags["vllm-0.11"][1] == f"attention scaling 1 vs {_mscale(g):.6g}"


@pytest.mark.parametrize("g", [2, 4])
def test_attention_factor_is_read_by_new_vllm_only(model, g, tmp_path):
    """transformers' attention_factor: vLLM 0.34 uses it; vLLM 0.11 (whitelist) and llama.cpp fall back to 0.1 ln g + 1."""
    folder = _export(model, tmp_path / "yarn", g, "yarn")
    cfg = json.loads((folder / "config.json").read_text())
    cfg["rope_parameters"]["attention_factor"] = cfg["rope_scaling"]["attention_factor"] = 1.5
    (folder / "config.json").write_text(json.dumps(cfg))
    res = engines.check(folder)
    assert res["readings"]["transformers"].attention_scaling == 1.5
    assert res["readings"]["vllm"].attention_scaling == 1.5 and res["disagreements"]["vllm"] == []
    assert res["readings"]["vllm-0.11"].attention_scaling == pytest.approx(_mscale(g))
    assert res["disagreements"]["vllm-0.11"] == [f"attention scaling {_mscale(g):.6g} vs 1.5"]
    assert "attention_factor" in res["readings"]["vllm-0.11"].notes[0]
    assert engines.gguf_rope_metadata(folder)["llama.rope.scaling.yarn_attn_factor"] == 1.5  # written, then unused
    assert res["readings"]["llama.cpp"].attention_scaling == pytest.approx(_mscale(g))
    assert res["disagreements"]["llama.cpp"] == [f"attention scaling {_mscale(g):.6g} vs 1.5"]


def test_legacy_attn_factor_multiplies_the_log_rule_in_old_vllm(model, tmp_path):
    """vLLM 0.11's attn_factor is a multiplier on 0.1 ln g + 1, not the total: writing the total would square it."""
    g = 4
    folder = _export(model, tmp_path / "yarn", g, "yarn")
    cfg = json.loads((folder / "config.json").read_text())
    cfg["rope_scaling"]["attn_factor"] = _mscale(g)
    (folder / "config.json").write_text(json.dumps(cfg))
    res = engines.check(folder)
    assert res["readings"]["vllm-0.11"].attention_scaling == pytest.approx(_mscale(g) ** 2)
    assert res["disagreements"]["vllm-0.11"] == [f"attention scaling {_mscale(g) ** 2:.6g} vs {_mscale(g):.6g}"]
    assert res["disagreements"]["vllm"] == []


# --- GGUF metadata through gguf's own writer and reader ----------------------------------------------------


def _write_gguf(meta: dict, path):
    """A tensor-less GGUF with ``meta`` written by the calls convert_hf_to_gguf makes (gguf's GGUFWriter)."""
    import gguf

    arch = meta["general.architecture"]
    w = gguf.GGUFWriter(str(path), arch)
    calls = {"context_length": w.add_context_length, "rope.dimension_count": w.add_rope_dimension_count,
             "rope.freq_base": w.add_rope_freq_base, "rope.scaling.factor": w.add_rope_scaling_factor,
             "rope.scaling.original_context_length": w.add_rope_scaling_orig_ctx_len,
             "rope.scaling.yarn_beta_fast": w.add_rope_scaling_yarn_beta_fast,
             "rope.scaling.yarn_beta_slow": w.add_rope_scaling_yarn_beta_slow,
             "rope.scaling.yarn_attn_factor": w.add_rope_scaling_yarn_attn_factor,
             "rope.scaling.type": lambda v: w.add_rope_scaling_type(gguf.RopeScalingType(v))}
    for key, value in meta.items():
        if key != "general.architecture":
            calls[key.removeprefix(arch + ".")](value)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.mark.parametrize("family", ["linear", "ntk", "yarn"])
def test_gguf_metadata_round_trip_and_llama_cpp_reading(model, family, tmp_path, capsys):
    g = 4
    folder = _export(model, tmp_path / family, g, family)
    meta = engines.gguf_rope_metadata(folder)
    path = _write_gguf(meta, tmp_path / f"{family}.gguf")
    back = engines.read_gguf(path)
    assert back == {k: pytest.approx(v, rel=1e-7) if isinstance(v, float) else v for k, v in meta.items()}  # float32
    from_file, predicted = engines.read_llama_cpp(back), engines.read_llama_cpp(meta)
    assert (from_file.rope_type, from_file.factor, from_file.max_len, from_file.original_max) == \
        (predicted.rope_type, predicted.factor, predicted.max_len, predicted.original_max)
    assert from_file.inv_freq == pytest.approx(predicted.inv_freq, rel=1e-6)
    capsys.readouterr()
    rc = cli.main(["check-export", str(folder), "--engine", "llama.cpp", "--gguf", str(path)])
    out = capsys.readouterr().out
    assert rc == 0 and "| llama.cpp |" in out and "| vllm |" not in out and "DISAGREEMENT" not in out
    # a GGUF whose factor was lost (e.g. converted from a config the converter cannot read) is flagged
    lost = _write_gguf({k: v for k, v in meta.items() if ".scaling." not in k}, tmp_path / "lost.gguf")
    rc = cli.main(["check-export", str(folder), "--engine", "llama.cpp", "--gguf", str(lost)])
    out = capsys.readouterr().out
    assert rc == (0 if family == "ntk" else 1)  # ntk is the base theta alone: nothing to lose
    assert ("DISAGREEMENT (llama.cpp vs transformers): frequencies differ" in out) == (family != "ntk")


# --- the command -------------------------------------------------------------------------------------


def test_check_export_prints_every_engine_and_exits_by_agreement(model, tmp_path, capsys):
    folder = _export(model, tmp_path / "yarn2", 2, "yarn")
    capsys.readouterr()
    assert cli.main(["check-export", str(folder)]) == 0
    out = capsys.readouterr().out
    for e in engines.ENGINES:
        assert f"| {e} | yarn | 2 | 10000 | {_mscale(2):.6f} | {L} | {2 * L} |" in out
    assert cli.main(["check-export", str(folder), "--engine", "vllm", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data["readings"]) == {"transformers", "vllm"} and data["disagreements"] == {"vllm": []}
    assert data["readings"]["vllm"]["attention_scaling"] == pytest.approx(_mscale(2))
    _rewrite(folder, rope_theta=None, rope_scaling=None)  # as transformers 5 alone writes it
    assert cli.main(["check-export", str(folder), "--engine", "vllm-0.11"]) == 1
    assert "DISAGREEMENT (vllm-0.11 vs transformers): attention scaling 1 vs" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--engine", "tgi"], "--engine 'tgi': valid engines are transformers, vllm, vllm-0.11, llama.cpp"),
    (["--gguf", "nowhere.gguf"], "--gguf nowhere.gguf: no such file"),
    (["--rtol", "0"], "--rtol must be a positive number"),
])
def test_bad_input_is_one_line(model, tmp_path, capsys, argv, message):
    folder = _export(model, tmp_path / "lin", 2, "linear")
    capsys.readouterr()
    assert cli.main(["check-export", str(folder), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("e2llm-lite check-export: error: ") and message in err[0]
    assert cli.main(["check-export", str(tmp_path / "missing")]) == 2
    assert "no config.json in" in capsys.readouterr().err
