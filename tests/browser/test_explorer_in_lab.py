"""The explanation explorer in a real front end: JupyterLab in headless Chromium, driven by Selenium.

Off by default (``make test`` skips it): ``make test-browser`` installs Debian's chromium and
chromium-driver and selenium when missing, and runs this file with ``TTAME_BROWSER_TESTS=1``.

What it does: writes a small notebook into a temporary folder, starts JupyterLab from this Python
environment on a free loopback port (a kernelspec of its own that runs this interpreter with the
repository under test first on ``PYTHONPATH`` and without ``TTAME_STATIC_FIGURES``), opens the
notebook in Chromium, runs all cells through JupyterLab's own ``notebook:run-all-cells`` command,
and checks that the explorer's controls and figure are drawn and that picking another image and
another method redraws the figure. A screenshot goes to ``outputs/browser/``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "outputs" / "browser"
ENABLE_ENV = "TTAME_BROWSER_TESTS"
CHROMIUM = os.environ.get("TTAME_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("TTAME_CHROMEDRIVER", "/usr/bin/chromedriver")
TOKEN = "ttame-browser-test"
KERNEL = "ttame-browser"
# First kernel start, torch imports and the explorer's precomputed maps take ~20 s on a 2-core CPU.
TIMEOUT = float(os.environ.get("TTAME_BROWSER_TIMEOUT", "240"))
LOOPBACK = {"127.0.0.1", "::1", "localhost"}

SKIP_REASON = "browser test: run `make test-browser` (needs Debian chromium + chromium-driver)"

SETUP_CELL = """\
import json, os, sys
import ttame_lib
from ttame_lib.viz import front_end_available
print("KERNEL-CHECK " + json.dumps({"prefix": sys.prefix, "ttame_lib": ttame_lib.__file__,
      "static_env": os.environ.get("TTAME_STATIC_FIGURES"), "front_end": front_end_available()}))
"""

EXPLORER_CELL = """\
import torch
from ttame_lib import make_explainer
from ttame_lib.viz import ExplanationExplorer
from ttame_lib.world.scenes import CompositeScenes
from ttame_lib.world.shipped import load_shipped_explainer

ttame = load_shipped_explainer("scenes_cnn")
data = CompositeScenes("test", length=8, size=64)
scenes = [data[i] for i in range(8)]
images = torch.stack([s[0] for s in scenes])
labels = [s[1] for s in scenes]
masks = torch.stack([torch.as_tensor(s[2]) for s in scenes])
explainers = {"T-TAME": ttame, "Grad-CAM": make_explainer(ttame.backbone, "gradcam")}
ExplanationExplorer(ttame.backbone, images, explainers, labels=labels, masks=masks).show()
"""

# The PNG drawn inside the explorer's Output widget (not a static figure in the cell's own output).
FIGURE_JS = """
const img = document.querySelector('.jupyter-widgets .widget-output .jp-OutputArea-output img');
return img && img.complete && img.naturalWidth > 0 ? img.src : null;
"""

RUN_ALL_JS = """
const done = arguments[arguments.length - 1];
(async () => {
  const app = window.jupyterapp;
  await app.started;
  await app.restored;
  const panel = app.shell.currentWidget;
  await panel.context.ready;
  await panel.sessionContext.ready;
  await app.commands.execute('notebook:run-all-cells');
  done('ok');
})().catch((e) => done('error: ' + e));
"""


def _enabled_or_skip() -> None:
    """Skip unless asked for; once asked for, a missing piece is a failure (not a silent skip)."""
    if os.environ.get(ENABLE_ENV) != "1":
        pytest.skip(f"{SKIP_REASON}; set {ENABLE_ENV}=1 to run it")
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not (Path(p).is_file() and os.access(p, os.X_OK))]
    for module in ("selenium", "jupyterlab"):
        try:
            __import__(module)
        except ImportError:
            missing.append(f"python package {module}")
    if missing:
        pytest.fail(f"{ENABLE_ENV}=1 but missing: {', '.join(missing)}; `make test-browser` installs them")


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Overrides the suite's fixture: only loopback (JupyterLab, chromedriver) may be reached."""
    real_connect, real_connect_ex, real_getaddrinfo = (
        socket.socket.connect,
        socket.socket.connect_ex,
        socket.getaddrinfo,
    )

    def allowed(address) -> bool:
        return not isinstance(address, tuple) or str(address[0]) in LOOPBACK

    def connect(self, address):
        if not allowed(address):
            raise OSError(f"browser test: only loopback connections are allowed, not {address!r}")
        return real_connect(self, address)

    def connect_ex(self, address):
        if not allowed(address):
            raise OSError(f"browser test: only loopback connections are allowed, not {address!r}")
        return real_connect_ex(self, address)

    def getaddrinfo(host, *args, **kwargs):
        if str(host) not in LOOPBACK:
            raise OSError(f"browser test: only loopback names resolve, not {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_notebook(folder: Path) -> Path:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": KERNEL, "display_name": "ttame browser test", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(SETUP_CELL), nbformat.v4.new_code_cell(EXPLORER_CELL)]
    path = folder / "explorer.ipynb"
    nbformat.write(nb, path)
    return path


def _server_env(home: Path) -> dict[str, str]:
    """This interpreter's bin first on PATH, the repository under test first on PYTHONPATH, Jupyter's
    config/data/runtime folders private, and nothing that would force static figures or Agg."""
    env = {k: v for k, v in os.environ.items() if k not in ("TTAME_STATIC_FIGURES", "MPLBACKEND", "JPY_SESSION_NAME")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    for name, sub in (
        ("JUPYTER_CONFIG_DIR", "config"),
        ("JUPYTER_DATA_DIR", "data"),
        ("JUPYTER_RUNTIME_DIR", "runtime"),
        ("IPYTHONDIR", "ipython"),
    ):
        env[name] = str(home / sub)
    env["JUPYTER_PREFER_ENV_PATH"] = "1"
    # A kernelspec of our own, by absolute path: no other "python3" on the machine can shadow it.
    spec = home / "data" / "kernels" / KERNEL
    spec.mkdir(parents=True)
    kernel = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "ttame browser test",
        "language": "python",
        "env": {"PYTHONPATH": env["PYTHONPATH"]},
    }
    (spec / "kernel.json").write_text(json.dumps(kernel))
    # No "get notified about Jupyter news?" toast over the screenshots.
    notification = home / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True)
    notification.write_text(json.dumps({"fetchNews": "false"}))
    return env


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab server on a free loopback port serving a temp folder with the test notebook."""
    _enabled_or_skip()
    root = tmp_path / "root"
    root.mkdir()
    _write_notebook(root)
    home = tmp_path / "jupyter"
    env = _server_env(home)
    port = _free_port()
    log = (tmp_path / "lab.log").open("w")
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={TOKEN}",
        f"--ServerApp.root_dir={root}",
        "--LabApp.expose_app_in_browser=True",
        "--LabApp.news_url=None",
        f"--LabApp.workspaces_dir={home / 'workspaces'}",
        f"--LabApp.user_settings_dir={home / 'settings'}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # containers and CI often run as root
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                pytest.fail(f"JupyterLab exited ({server.returncode}):\n{(tmp_path / 'lab.log').read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not answer in 60 s:\n{(tmp_path / 'lab.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield url, tmp_path / "lab.log"
    finally:
        server.terminate()  # the server shuts its kernels down on SIGTERM
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)  # the session this fixture started, nothing else
            server.wait()
        log.close()


@pytest.fixture
def browser():
    _enabled_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,1300",
        "--disable-extensions",
        "--no-first-run",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_script_timeout(TIMEOUT)
    try:
        yield driver
    finally:
        driver.quit()


def _outputs_text(driver) -> str:
    return "\n---\n".join(e.text for e in driver.find_elements("css selector", ".jp-OutputArea-output"))


def test_explorer_renders_and_redraws_in_jupyterlab(lab, browser):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import Select, WebDriverWait

    url, log_path = lab
    driver = browser
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    wait = WebDriverWait(driver, TIMEOUT, poll_frequency=0.5)

    def until(condition, what: str):
        try:
            return wait.until(condition)
        except TimeoutException:
            driver.save_screenshot(str(SCREENSHOTS / "explorer-failure.png"))
            pytest.fail(
                f"timed out after {TIMEOUT:.0f} s waiting for {what}; screenshot outputs/browser/explorer-failure.png"
                f"\noutputs:\n{_outputs_text(driver)[-3000:]}\nserver log:\n{log_path.read_text()[-3000:]}"
            )

    started = time.monotonic()
    driver.get(f"{url}/lab/tree/explorer.ipynb?token={TOKEN}")
    until(lambda d: d.execute_script("return !!window.jupyterapp"), "JupyterLab to start (window.jupyterapp)")
    until(EC.presence_of_element_located((By.CSS_SELECTOR, ".jp-NotebookPanel .jp-Cell")), "the notebook to open")
    result = driver.execute_async_script(RUN_ALL_JS)
    assert result == "ok", f"notebook:run-all-cells failed: {result}"

    # The kernel is this interpreter, importing the repository under test, with widgets enabled.
    check = until(
        lambda d: next(
            (e.text for e in d.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output") if "KERNEL-CHECK" in e.text),
            None,
        ),
        "the kernel check cell's output",
    )
    kernel = json.loads(check.split("KERNEL-CHECK", 1)[1].strip())
    assert Path(kernel["prefix"]).resolve() == Path(sys.prefix).resolve(), kernel
    assert Path(kernel["ttame_lib"]).resolve() == (ROOT / "ttame_lib" / "__init__.py").resolve(), kernel
    assert kernel["static_env"] is None and kernel["front_end"] is True, kernel

    # (a) The widget renders: its dropdowns (image, method, class), toggle buttons, slider and figure.
    until(
        lambda d: len(d.find_elements(By.CSS_SELECTOR, ".jupyter-widgets .widget-dropdown select")) >= 3,
        "the explorer's three dropdowns",
    )
    assert driver.find_elements(By.CSS_SELECTOR, ".jupyter-widgets .widget-toggle-buttons"), "no toggle buttons"
    assert driver.find_elements(By.CSS_SELECTOR, ".jupyter-widgets .widget-slider"), "no opacity slider"
    first = until(lambda d: d.execute_script(FIGURE_JS), "the explorer's figure (a PNG in its Output widget)")
    assert first.startswith("data:image/png"), first[:80]
    rendered_after = time.monotonic() - started
    errors = driver.find_elements(
        By.CSS_SELECTOR, '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
    )
    assert not [e.text for e in errors if "Error" in e.text], [e.text for e in errors]

    selects = driver.find_elements(By.CSS_SELECTOR, ".jupyter-widgets .widget-dropdown select")
    image, method = Select(selects[0]), Select(selects[1])
    assert len(image.options) == 8 and all("#" in o.text for o in image.options), [o.text for o in image.options]
    assert [o.text for o in method.options] == ["T-TAME", "Grad-CAM"]
    driver.save_screenshot(str(SCREENSHOTS / "explorer-initial.png"))

    # (b) Changing a control redraws the figure: another image, then another method.
    image.select_by_index(1)
    second = until(
        lambda d: (src := d.execute_script(FIGURE_JS)) and src != first and src,
        "the figure to change after picking another image",
    )
    method.select_by_visible_text("Grad-CAM")
    third = until(
        lambda d: (src := d.execute_script(FIGURE_JS)) and src != second and src,
        "the figure to change after picking Grad-CAM",
    )
    assert third.startswith("data:image/png") and third != first
    assert len(driver.find_elements(By.CSS_SELECTOR, ".jupyter-widgets .widget-output img")) == 1, "stale figures"
    driver.execute_script("document.querySelector('.jupyter-widgets.widget-vbox').scrollIntoView()")
    driver.save_screenshot(str(SCREENSHOTS / "explorer.png"))
    print(
        f"explorer rendered {rendered_after:.1f} s after opening the notebook; redrew twice; "
        f"screenshots in {SCREENSHOTS.relative_to(ROOT)}/"
    )


def test_skipped_without_opt_in(monkeypatch):
    """``make test`` must never need a browser: without the opt-in the browser test skips, with a reason."""
    monkeypatch.delenv(ENABLE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="make test-browser"):
        _enabled_or_skip()
