"""The explorer and the progress bar in a real browser: JupyterLab driven by headless Chromium through Selenium.

The test writes a small notebook into a temporary folder (two untrained ResNet-18 models on four scenes of the
embedded mixed-boundary dataset, the explorer, a 40-step progress loop), starts JupyterLab there on 127.0.0.1
with a token, opens the notebook in headless Chromium and runs every cell from the Run menu. Then, in the page:

- every control of the explorer renders (image and band-width sliders, class dropdown, branch toggles, model
  switch) and the figure is an image;
- changing each control changes the image the page shows (its PNG data before and after);
- no output shows a widget's raw JSON or text form, an error placeholder, or a traceback;
- the progress bar moves while its cell runs and ends as one line of text holding ``40/40``, also in the file
  JupyterLab saves.

Screenshots go to ``runs/browser/`` (git-ignored; CI keeps them as artefacts). Debian's ``chromium`` and
``chromium-driver`` drive the page (``bash .ci/apt-packages`` installs them); nothing is downloaded. The test is
skipped only where they are missing, and fails instead when the ``CI`` environment variable is set.
``RANLIB_BROWSER_PYTHON=/path/to/python`` runs the notebook's kernel under another interpreter (e.g. one with
Colab's ipywidgets 7.7.1) while JupyterLab itself stays this one.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import numpy as np
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from PIL import Image
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

from ranlib.viz.branches import BRANCHES

ARTEFACTS = Path(__file__).resolve().parent.parent / "runs" / "browser"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
NOTEBOOK = "explorer.ipynb"
KERNEL, KERNEL_NAME = "ranlib-browser-test", "ranlib test kernel"
PROGRESS_STEPS = 40
WAIT = 90  # seconds for the slow steps (the page, the kernel, the first cells) on two busy cores

if not (CHROMIUM and CHROMEDRIVER):
    reason = ("chromium and chromedriver are not installed (Debian: `bash .ci/apt-packages`, i.e. apt-get install "
              "chromium chromium-driver)")
    if os.environ.get("CI"):
        raise RuntimeError(f"the browser test must run in CI, but {reason}")
    pytestmark = pytest.mark.skip(reason=reason)

# Things a widget output shows when it fails: JupyterLab's placeholders, ipywidgets' text form of a widget
# (VBox(children=...)) and the JSON of its model reference.
BROKEN = re.compile(r"Error displaying widget|Loading widget|model not found|javascript error|Traceback|"
                    r"\w+\(children=\(|model_id|application/vnd\.jupyter\.widget-view\+json")


def explorer_notebook() -> nbformat.NotebookNode:
    """The notebook the browser runs: data and models, the explorer, a progress loop."""
    nb = new_notebook(metadata={"kernelspec": {"name": KERNEL, "display_name": KERNEL_NAME, "language": "python"}})
    nb.cells = [
        new_markdown_cell("# The explorer in a browser (written by tests/test_browser.py)"),
        new_code_cell(
            "import ipywidgets\n"
            "import torch\n\n"
            "from ranlib import build_model\n"
            "from ranlib.data import class_names, make_mixed_boundary_dataset, val_transforms, voc\n"
            "from ranlib.viz import explorer\n\n"
            "torch.manual_seed(0)\n"
            "torch.set_num_threads(1)  # the server, the browser and this kernel share the cores\n"
            "root = make_mixed_boundary_dataset('data', n_train=0, n_val=4, size=96, progress=False)\n"
            "CLASSES = class_names(root)\n"
            "val_set = voc(root, 'val', val_transforms())\n"
            "models = {name: build_model('resnet18', variant=variant, num_classes=len(CLASSES)).eval()\n"
            "          for name, variant in (('baseline', 'baseline'), ('RAN', 'ran'))}\n"
            "print('ipywidgets', ipywidgets.__version__)"),
        new_code_cell("browser = explorer(models, val_set, CLASSES)\nbrowser"),
        new_code_cell(
            "import time\n\n"
            "from ranlib.progress import tqdm\n\n"
            f"for _ in tqdm(range({PROGRESS_STEPS}), desc='progress check'):\n"
            "    time.sleep(0.1)"),
    ]
    return nb


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab on 127.0.0.1 with a token, its config, data and runtime folders all temporary; stopped after."""
    home = tmp_path_factory.mktemp("jupyter")
    root = home / "root"
    root.mkdir()
    nbformat.write(explorer_notebook(), root / NOTEBOOK)
    # the kernel runs this interpreter (the one with ranlib), whatever kernels the machine has registered; not
    # named python3, which Jupyter always resolves to the server's own interpreter
    kernel = home / "data" / "kernels" / KERNEL
    kernel.mkdir(parents=True)
    python = os.environ.get("RANLIB_BROWSER_PYTHON", sys.executable)
    (kernel / "kernel.json").write_text(json.dumps({
        "argv": [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": KERNEL_NAME, "language": "python"}))
    # no news or update check: their notification would cover part of the page
    settings = home / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_DATA_DIR=str(home / "data"),
               JUPYTER_RUNTIME_DIR=str(home / "runtime"), JUPYTER_PLATFORM_DIRS="1")
    port, token = free_port(), secrets.token_hex(16)
    log = open(home / "jupyterlab.log", "w")  # closed below, after the server
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
         "--ServerApp.port_retries=0", "--ServerApp.allow_root=True", f"--IdentityProvider.token={token}",
         f"--ServerApp.root_dir={root}",
         f"--LabApp.user_settings_dir={home / 'settings'}", f"--LabApp.workspaces_dir={home / 'workspaces'}"],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + WAIT
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"JupyterLab exited ({server.returncode}):\n{(home / 'jupyterlab.log').read_text()}")
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"JupyterLab did not answer on {url} within {WAIT} s") from None
                time.sleep(0.5)
        widgets_version = subprocess.run([python, "-c", "import ipywidgets; print(ipywidgets.__version__)"],
                                         capture_output=True, text=True, check=True).stdout.strip()
        yield {"url": url, "token": token, "root": root, "ipywidgets": widgets_version}
    finally:
        server.terminate()  # the server shuts its kernels down on SIGTERM
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium from the system, driven by the system's chromedriver."""
    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1500,1300", "--force-device-scale-factor=1"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


class Page:
    """The notebook as the browser shows it: cells, outputs, the explorer's controls and figure."""

    def __init__(self, driver):
        self.driver, self.shots = driver, 0

    def wait(self, condition, message: str, timeout: float = WAIT):
        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.1,
                                 ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
                                 ).until(lambda _: condition())
        except TimeoutException as error:
            self.screenshot("failure")
            raise AssertionError(f"{message} (after {timeout} s; see {ARTEFACTS})") from error

    def screenshot(self, name: str) -> None:
        self.shots += 1
        self.driver.save_screenshot(str(ARTEFACTS / f"{self.shots:02d}_{name}.png"))

    def kernel_idle(self) -> bool:
        """The status bar says the notebook's kernel is connected and idle ("ranlib test kernel | Idle")."""
        return any(item.text.strip() == f"{KERNEL_NAME} | Idle"
                   for item in self.driver.find_elements(By.CSS_SELECTOR, ".jp-StatusBar-TextItem"))

    def output_text(self, index: int) -> str:
        return self.driver.execute_script(
            "const cell = document.querySelectorAll('.jp-Notebook .jp-Cell')[arguments[0]];"
            "const out = cell && cell.querySelector('.jp-OutputArea');"
            "return out ? out.innerText : '';", index)

    def explorer(self):
        boxes = self.driver.find_elements(By.CSS_SELECTOR, ".jp-OutputArea .widget-vbox")
        return boxes[0] if boxes else None

    def control(self, label: str):
        """The labelled control (slider, dropdown, toggle buttons) of the explorer."""
        return self.explorer().find_element(
            By.XPATH, f".//div[./label[contains(@class, 'widget-label')][normalize-space()='{label}']]")

    def figure_png(self) -> str:
        """The base64 PNG the explorer's output widget shows ('' while it shows none)."""
        box = self.explorer()
        images = box.find_elements(By.CSS_SELECTOR, ".widget-output img") if box else []
        src = images[-1].get_attribute("src") if images else ""
        return src.split(",", 1)[1] if src.startswith("data:image/png;base64,") else ""

    def change(self, name: str, act) -> None:
        """Work one control and wait until the figure shown is a different image."""
        before = self.figure_png()
        act()
        self.wait(lambda: self.figure_png() not in ("", before), f"changing {name} did not change the figure")
        pixels = [np.asarray(Image.open(io.BytesIO(base64.b64decode(png))).convert("RGB"))
                  for png in (before, self.figure_png())]
        assert pixels[0].shape != pixels[1].shape or (pixels[0] != pixels[1]).any(), name
        self.screenshot(name.replace(" ", "_"))


def step_slider(page: Page, label: str) -> None:
    """One step right on a slider, with the keyboard on its handle (as a person would)."""
    handle = page.control(label).find_element(By.CSS_SELECTOR, ".noUi-handle")
    handle.click()
    handle.send_keys(Keys.ARROW_RIGHT)


def branch_toggles(page: Page) -> list:
    """The branch toggle buttons (the model switch's buttons, inside its ToggleButtons, left out)."""
    return page.explorer().find_elements(By.XPATH, ".//button[contains(@class, 'widget-toggle-button')]"
                                         "[not(ancestor::div[contains(@class, 'widget-toggle-buttons')])]")


def test_explorer_and_progress_in_jupyterlab(lab, browser):
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTEFACTS.glob("*.png"):
        old.unlink()
    page = Page(browser)
    browser.get(f"{lab['url']}/lab/tree/{NOTEBOOK}?token={lab['token']}")
    page.wait(lambda: browser.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-Cell") and page.kernel_idle(),
              "the notebook did not open with an idle kernel")
    page.screenshot("opened")

    # Run > Run All Cells
    browser.find_element(By.XPATH, "//div[contains(@class, 'lm-MenuBar-itemLabel')][normalize-space()='Run']").click()
    run_all = "//li[contains(@class, 'lm-Menu-item')][.//div[normalize-space()='Run All Cells']]"
    page.wait(lambda: browser.find_elements(By.XPATH, run_all), "the Run menu did not open")
    browser.find_element(By.XPATH, run_all).click()

    # the explorer appears with its figure
    page.wait(lambda: (page.explorer() is not None and page.figure_png()) or BROKEN.search(page.output_text(2)),
              "the explorer did not render a figure")
    assert not BROKEN.search(page.output_text(2)), f"the explorer's output shows: {page.output_text(2)[:500]}"
    # the progress bar: seen part-way while its cell runs, and at the end one line holding 40/40
    seen, deadline = set(), time.monotonic() + WAIT
    while f"{PROGRESS_STEPS}/{PROGRESS_STEPS}" not in seen and time.monotonic() < deadline:
        seen.update(re.findall(rf"\b\d+/{PROGRESS_STEPS}\b", page.output_text(3)))
        time.sleep(0.05)
    page.wait(page.kernel_idle, "the cells did not finish")
    page.screenshot("ran")
    assert page.output_text(1).strip() == f"ipywidgets {lab['ipywidgets']}", page.output_text(1)
    final = page.output_text(3).strip()
    assert final.startswith("progress check: 100%") and f"{PROGRESS_STEPS}/{PROGRESS_STEPS}" in final, final
    assert len(final.splitlines()) == 1, f"the progress bar should end as one line, the page shows:\n{final}"
    assert seen - {f"0/{PROGRESS_STEPS}", f"{PROGRESS_STEPS}/{PROGRESS_STEPS}"}, (
        f"the progress bar did not move while its cell ran (states seen: {sorted(seen)})")

    # every control renders
    box = page.explorer()
    for label in ("image", "class", "band width", "model"):
        assert page.control(label).is_displayed(), label
    toggles = branch_toggles(page)
    assert [t.text for t in toggles] == list(BRANCHES), [t.text for t in toggles]
    switch = page.control("model").find_elements(By.TAG_NAME, "button")
    assert [b.text for b in switch] == ["baseline", "RAN"], [b.text for b in switch]
    assert all(b.is_displayed() and b.size["width"] > 0 for b in toggles + switch)
    page.driver.execute_script("arguments[0].scrollIntoView();", box)
    page.screenshot("explorer")

    # each control changes the figure
    page.change("image", lambda: step_slider(page, "image"))
    dropdown = Select(page.control("class").find_element(By.TAG_NAME, "select"))
    other = next(o.text for o in dropdown.options if o.text != dropdown.first_selected_option.text)
    page.change("class", lambda: dropdown.select_by_visible_text(other))
    page.change("band width", lambda: step_slider(page, "band width"))
    page.change("model", lambda: page.control("model").find_element(
        By.XPATH, ".//button[normalize-space()='RAN']").click())
    page.explorer().screenshot(str(ARTEFACTS / "explorer.png"))  # RAN, all four branches: the README's picture
    for toggle in branch_toggles(page):
        page.change(f"branch {toggle.text}", toggle.click)

    # nothing shows raw JSON, a widget's text form, a placeholder or a traceback
    for i in range(len(browser.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-Cell"))):
        assert not BROKEN.search(page.output_text(i)), f"cell {i} shows: {page.output_text(i)[:500]}"
    assert not browser.find_elements(By.CSS_SELECTOR, "[data-mime-type='application/vnd.jupyter.error']")

    # saved by JupyterLab, the progress output is text whose final state is 40/40
    saved = (lab["root"] / NOTEBOOK).stat().st_mtime
    browser.find_element(By.CSS_SELECTOR, ".jp-Notebook").send_keys(Keys.CONTROL, "s")
    page.wait(lambda: (lab["root"] / NOTEBOOK).stat().st_mtime != saved, "the notebook was not saved")
    page.wait(lambda: nbformat.read(lab["root"] / NOTEBOOK, as_version=4).cells[3].outputs,
              "the saved notebook has no progress output")
    outputs = nbformat.read(lab["root"] / NOTEBOOK, as_version=4).cells[3].outputs
    assert [o.output_type for o in outputs] == ["stream"], outputs
    assert f"{PROGRESS_STEPS}/{PROGRESS_STEPS}" in outputs[0].text.rstrip().split("\r")[-1], outputs[0].text
