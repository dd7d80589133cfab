"""pyproject.toml and environment.yml must agree; the README keeps its two fresh-machine commands."""
import pathlib
import re
import tomllib

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]


def normalise(req: str) -> str:
    return re.sub(r"\s+", "", req).lower().replace("_", "-")


def pyproject_requirements() -> set[str]:
    proj = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = set(map(normalise, proj["dependencies"]))
    extras = proj["optional-dependencies"]
    for name in ("notebooks", "train", "test", "docs"):
        reqs |= set(map(normalise, extras[name]))
    return reqs


def conda_requirements() -> tuple[set[str], list]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    return {normalise(r) for r in pip if not r.startswith("-e")}, env["dependencies"]


def test_environment_yml_matches_pyproject():
    conda, deps = conda_requirements()
    py = pyproject_requirements()
    assert conda == py, f"only in environment.yml: {sorted(conda - py)}; only in pyproject: {sorted(py - conda)}"
    requires_python = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert f"python{requires_python}" in [d for d in deps if isinstance(d, str)]


def test_gpu_extra_is_gpu_only():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(r.startswith("flash-attn") for r in extras["gpu"])
    for name in ("notebooks", "train", "test"):
        assert not any(r.startswith("flash-attn") for r in extras[name]), name


def test_readme_starts_with_exactly_two_commands_and_ci_runs_the_test_command():
    text = (ROOT / "README.md").read_text()
    first_block = re.search(r"```(?:bash|sh)?\n(.*?)```", text, re.S).group(1)
    commands = [ln for ln in first_block.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    assert len(commands) == 2, commands
    assert "e2llm-lite reproduce" in commands[0] and "pip install torch==2.13.0" in commands[0]
    assert "bash .ci/run" in commands[1]
    test_cmd = re.search(r"`(pytest --nbval[^`]*)`", text).group(1)
    assert test_cmd in (ROOT / ".ci" / "run").read_text()
