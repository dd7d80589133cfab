"""Notebook 02 in a real browser: JupyterLab + headless Chromium, run all cells, move the g slider,
and check that the rendered figure changed.

This is how students meet the widgets, so it is tested that way (nbval cannot: it has no widget
front end). Debian's ``/usr/bin/chromium`` is driven by the pip ``playwright`` package; the test
never downloads a browser (no ``playwright install``). It does not skip: without Chromium it fails
and says how to install it.

Evidence (before/after screenshots of the widget's figure, their SHA-256 and the image hashes) goes
to a JSON in a temporary directory, or to ``figures/browser_test/`` when
``E2LLM_BROWSER_EVIDENCE=1``.
"""
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "02_position_indices.ipynb"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
SERVER_TIMEOUT_S = 40  # JupyterLab up and answering
RUN_ALL_TIMEOUT_S = 70  # every cell of notebook 02 executed (it runs in ~20 s on 2 busy cores)
REDRAW_TIMEOUT_S = 20  # figure redrawn after the slider moved
ERROR_OUTPUTS = ('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"], '
                 '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.error"]')
G_AFTER = 12  # the value the test gives the g slider (notebook default: 5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 2.0):
    with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 (local server only)
        return json.loads(r.read().decode())


def _sha256(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


@pytest.fixture
def lab(tmp_path):
    """JupyterLab on 127.0.0.1 with a token, serving a copy of notebook 02 (outputs cleared)."""
    import nbformat

    root = tmp_path / "lab"
    root.mkdir()
    nb = nbformat.read(NOTEBOOK, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nbformat.write(nb, root / NOTEBOOK.name)

    # quiet, throw-away Lab state: no news/update toasts, workspaces and runtime files under tmp
    settings = tmp_path / "settings"
    notif = settings / "@jupyterlab" / "apputils-extension"
    notif.mkdir(parents=True)
    (notif / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    tracker = settings / "@jupyterlab" / "notebook-extension"
    tracker.mkdir(parents=True)  # keep every cell in the DOM (no virtual scrolling), so all prompts can be read
    (tracker / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))

    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ)
    env.update({
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"),
        "E2LLM_FIGURES_DIR": str(tmp_path / "figures"),  # the notebook saves its figures here, not in the repo
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
    })
    env.pop("MPLBACKEND", None)  # the kernel must use the inline backend, as for a user
    log = open(tmp_path / "jupyter.log", "wb")
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root",
           "--ServerApp.open_browser=False", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
           "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}"]
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"JupyterLab exited with {proc.returncode}: {(tmp_path / 'jupyter.log').read_text()[-2000:]}")
            try:
                _get(f"{base}/api/status?token={token}")
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not answer within {SERVER_TIMEOUT_S} s")
                time.sleep(0.3)
        yield {"base": base, "token": token, "root": root, "tmp": tmp_path}
    finally:
        # stop our own server and the kernels it started (its process group), by id
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=5)
        log.close()


def _evidence_dir(tmp_path: Path) -> Path:
    if os.environ.get("E2LLM_BROWSER_EVIDENCE") == "1":
        d = ROOT / "figures" / "browser_test"
    else:
        d = tmp_path / "browser_test"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _kernel_idle(lab) -> bool:
    sessions = _get(f"{lab['base']}/api/sessions?token={lab['token']}")
    return bool(sessions) and all(s["kernel"]["execution_state"] == "idle" for s in sessions)


def test_notebook02_g_slider_redraws_the_figure(lab):
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} not found: install Debian's Chromium (`apt-get install -y chromium`); "
                    "never `playwright install`")
    from playwright.sync_api import sync_playwright

    t_start = time.monotonic()
    evidence = _evidence_dir(lab["tmp"])
    url = f"{lab['base']}/lab/tree/{NOTEBOOK.name}?token={lab['token']}"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(30_000)
            page.goto(url)

            # 1) the notebook is open and its kernel has started and gone idle
            page.wait_for_selector(".jp-NotebookPanel .jp-Notebook .jp-Cell", state="attached")
            deadline = time.monotonic() + 30
            while not _kernel_idle(lab):
                assert time.monotonic() < deadline, "kernel did not start and go idle within 30 s"
                time.sleep(0.3)
            n_code = page.locator(".jp-Notebook .jp-CodeCell").count()
            assert n_code >= 10, f"expected notebook 02's code cells, found {n_code}"

            # 2) Run > Run All Cells
            page.locator(".lm-MenuBar-item", has_text="Run").first.click()
            page.locator('.lm-Menu-item[data-command="runmenu:run-all"]').click()

            # 3) wait until every code cell has an execution count and the kernel is idle again
            deadline = time.monotonic() + RUN_ALL_TIMEOUT_S
            while True:
                errors = page.locator(ERROR_OUTPUTS).all_inner_texts()
                assert not [e for e in errors if "Error" in e or "Traceback" in e], f"a cell raised: {errors}"
                prompts = page.eval_on_selector_all(
                    ".jp-Notebook .jp-CodeCell .jp-InputArea-prompt", "els => els.map(e => e.textContent.trim())")
                done = sum(p.startswith("[") and p[1:-2].isdigit() for p in prompts)
                if done == n_code and _kernel_idle(lab):
                    break
                assert time.monotonic() < deadline, f"only {done}/{n_code} cells ran within {RUN_ALL_TIMEOUT_S} s: {prompts}"
                time.sleep(0.5)

            # 4) the widget's figure: hash it, move g, wait for a new image
            img = page.locator(".e2-figure-out img").first
            img.wait_for(state="visible", timeout=REDRAW_TIMEOUT_S * 1000)
            img.scroll_into_view_if_needed()
            src_before = img.get_attribute("src")
            shot_before = img.screenshot(path=str(evidence / "before.png"))
            g_readout = page.locator(".e2-slider-g .widget-readout").first
            g_before = g_readout.inner_text().strip()

            g_readout.click()
            page.keyboard.press("Control+A")
            page.keyboard.type(str(G_AFTER))
            page.keyboard.press("Enter")

            deadline = time.monotonic() + REDRAW_TIMEOUT_S
            src_after = src_before
            while src_after == src_before:
                assert time.monotonic() < deadline, f"figure did not change within {REDRAW_TIMEOUT_S} s of moving g"
                time.sleep(0.3)
                after = page.locator(".e2-figure-out img")
                if after.count():
                    src_after = after.first.get_attribute("src")
            img_after = page.locator(".e2-figure-out img").first
            img_after.wait_for(state="visible")
            shot_after = img_after.screenshot(path=str(evidence / "after.png"))
            g_after = page.locator(".e2-slider-g .widget-readout").first.inner_text().strip()
        finally:
            browser.close()

    record = {
        "notebook": f"notebooks/{NOTEBOOK.name}",
        "browser": "Debian chromium (headless) via playwright",
        "g_before": g_before,
        "g_after": g_after,
        "image_src_sha256_before": _sha256(src_before),
        "image_src_sha256_after": _sha256(src_after),
        "screenshot_sha256_before": _sha256(shot_before),
        "screenshot_sha256_after": _sha256(shot_after),
        "seconds": round(time.monotonic() - t_start, 1),
    }
    (evidence / "browser_test.json").write_text(json.dumps(record, indent=1) + "\n")
    assert g_before == "5" and g_after == str(G_AFTER), record
    assert record["image_src_sha256_before"] != record["image_src_sha256_after"], record
    assert record["screenshot_sha256_before"] != record["screenshot_sha256_after"], record
