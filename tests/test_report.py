"""The HTML training report: its content, atomic writing, and how it looks in a real browser.

The browser tests drive the system's Chromium through Selenium and are skipped when either
is missing. Set CHAINRULE_SCREENSHOT_DIR to keep the full-page screenshot for a person to see.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest

import chainrule as cr
from chainrule.datasets import Dataset
from chainrule.report import SECTIONS, write_report

needs_matplotlib = pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None,
                                      reason="the plots need matplotlib")


def classification_run(epochs=4):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(90, 4)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 1)
    data = Dataset("blobs", "classification", X[:70], y[:70], X[70:], y[70:],
                   ["a", "b", "c", "d"], ["low", "mid", "high"])
    model = cr.Sequential(cr.Linear(4, 8, rng=0), cr.ReLU(), cr.Dropout(0.1, rng=1),
                          cr.Linear(8, 3, rng=2), cr.Softmax())
    loss = cr.NLLM()
    history = cr.fit(model, loss, data.X_train, data.y_train, epochs=epochs,
                     validation_split=0.2, rng=0, progress=False)
    settings = {"data": "blobs", "hidden": [8], "epochs": epochs, "lr": None,
                "label": "<script>alert(1)</script>", "command": "train"}
    return dict(model=model, loss=loss, data=data, history=history, settings=settings,
                metrics={"accuracy": 0.875})


def regression_run():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 3)).astype(np.float32)
    y = (100 + 50 * X[:, 0]).astype(np.float32)  # raw units: the report standardises
    data = Dataset("line", "regression", X[:50], y[:50], X[50:], y[50:], ["x", "y", "z"])
    model = cr.Sequential(cr.Linear(3, 5, rng=0), cr.Tanh(), cr.Linear(5, 1, rng=1),
                          cr.Identity())
    loss = cr.SquareLoss()
    history = cr.fit(model, loss, X[:50], (y[:50] - y[:50].mean()) / y[:50].std(), epochs=3,
                     rng=0, progress=False)
    return dict(model=model, loss=loss, data=data, history=history, settings={},
                metrics={"r2": 0.5, "mse": 12.25})


def images(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


@needs_matplotlib
def test_classification_report_has_every_section(tmp_path):
    path = tmp_path / "run.html"
    write_report(path, **classification_run())
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    for key, title in SECTIONS.items():
        assert f'<section id="{key}">' in page and f"<h2>{title}</h2>" in page
    assert len(images(page)) == 2 and all(i.startswith(b"\x89PNG") for i in images(page))
    for piece in ["test accuracy", "0.875", "blobs", "modules.3", "Linear(8, 3) → Softmax()",
                  "∂L/∂W² = A¹ᵀ ∂L/∂Z²", "diag f′(z)", "best epoch", "Linear(4, 8)"]:
        assert piece in page, piece
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    assert [p.name for p in tmp_path.iterdir()] == ["run.html"]  # no temporary file left


def test_report_is_self_contained(tmp_path):
    path = tmp_path / "run.html"
    write_report(path, **classification_run())
    page = path.read_text(encoding="utf-8")
    assert "default-src 'none'" in page  # the browser itself refuses any request
    links = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert links and all(u.startswith(("data:", "#")) for u in links), links
    assert "<script" not in page
    assert not re.search(r"url\(|@import|https?://", page)


@needs_matplotlib
def test_regression_report(tmp_path):
    path = tmp_path / "reg.html"
    write_report(path, **regression_run())
    page = path.read_text(encoding="utf-8")
    assert "test R²" in page and "test MSE" in page and "12.25" in page
    assert "Targets are standardised" in page
    assert "regression" in page
    assert len(images(page)) == 2
    # Standardised targets keep the explain loss near 1, not near 100² (raw units).
    loss = float(re.search(r"\(loss ([0-9.e+-]+)\)", page).group(1))
    assert loss < 10


def settings_rows(page: str) -> dict:
    section = page.split('<section id="settings">')[1].split("</section>")[0]
    cells = re.findall(r"<tr><td[^>]*>(.*?)</td><td[^>]*>(.*?)</td></tr>", section)
    return dict(cells)


def test_settings_show_the_values_used_not_dashes(tmp_path):
    # The command line passes None for "the default": the report shows what that was.
    run = classification_run()
    run["settings"].update(optimizer="adam", init=None, activation="relu", clip_grad_norm=None,
                           schedule="constant", task=None, batch_size=None, early_stopping=0,
                           progress=None, save=None)
    write_report(tmp_path / "run.html", **run)
    rows = settings_rows((tmp_path / "run.html").read_text(encoding="utf-8"))
    assert rows["lr"] == "0.001 (adam&#x27;s default)"
    assert rows["init"] == "gaussian"  # what every Linear of the model was built with
    assert rows["clip_grad_norm"] == "off" and rows["early_stopping"] == "off"
    assert rows["task"] == "classification"
    assert rows["batch_size"] == "all rows (batch gradient descent)"
    assert rows["progress"] == "when stderr is a terminal"
    assert rows["save"] == "—"  # nothing was asked for


def test_settings_name_the_init_of_hidden_and_output_layers(tmp_path):
    run = classification_run()
    run["model"] = cr.Sequential(cr.Linear(4, 8, init="he", rng=0), cr.ReLU(),
                                 cr.Linear(8, 3, init="xavier", rng=2), cr.Softmax())
    run["settings"].update(optimizer="sgd", lr=0.5, init=None)
    write_report(tmp_path / "run.html", **run)
    rows = settings_rows((tmp_path / "run.html").read_text(encoding="utf-8"))
    assert rows["init"] == "he (hidden layers), xavier (output layer)"
    assert rows["lr"] == "0.5"


def test_report_of_an_empty_history(tmp_path):
    run = classification_run()
    run["history"] = cr.History()
    write_report(tmp_path / "empty.html", **run)
    assert "0 epochs" in (tmp_path / "empty.html").read_text(encoding="utf-8")


def test_report_without_matplotlib(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    write_report(tmp_path / "run.html", **classification_run())
    page = (tmp_path / "run.html").read_text(encoding="utf-8")
    assert "pip install" in page and not images(page)
    assert '<section id="explain">' in page


def test_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "run.html"
    path.write_text("old report")
    import chainrule.report as report

    def broken(model):
        raise RuntimeError("disk full")
    monkeypatch.setattr(report, "_model", broken)
    with pytest.raises(RuntimeError):
        write_report(path, **classification_run())
    assert path.read_text() == "old report"
    assert [p.name for p in tmp_path.iterdir()] == ["run.html"]


def test_command_line_writes_the_report(tmp_path, capsys):
    pytest.importorskip("sklearn")
    from chainrule.cli import main
    path = tmp_path / "iris.html"
    code = main(["train", "--data", "iris", "--epochs", "2", "--hidden", "6",
                 "--report", str(path), "--no-progress"])
    assert code == 0
    page = path.read_text(encoding="utf-8")
    assert "chainrule training report: iris" in page and "test accuracy" in page
    rows = settings_rows(page)
    assert rows["lr"] == "0.001 (adam&#x27;s default)"
    assert rows["init"] == "he (hidden layers), xavier (output layer)"
    assert "wrote report to" in capsys.readouterr().err


# -- in a real browser ---------------------------------------------------------------------

# ``browser``: a headless Chromium, from conftest.py (skips without one).


def open_page(driver, path):
    """Load ``path``; return its console messages and the URLs it requested."""
    driver.get_log("browser")
    driver.get_log("performance")  # drop what came before
    driver.get(path.as_uri())
    console = driver.get_log("browser")
    events = [json.loads(e["message"])["message"] for e in driver.get_log("performance")]
    urls = [e["params"]["request"]["url"] for e in events
            if e["method"] == "Network.requestWillBeSent"]
    return console, [u for u in urls if not u.startswith("chrome://")]  # browser internals


@pytest.fixture(scope="module")
def report_page(tmp_path_factory):
    path = tmp_path_factory.mktemp("report") / "run.html"
    write_report(path, **classification_run(epochs=6))
    return path


def test_report_loads_without_errors_or_requests(browser, report_page):
    console, urls = open_page(browser, report_page)
    assert [m for m in console if m["level"] in ("SEVERE", "WARNING")] == []
    assert all(u.startswith(("file:", "data:")) for u in urls), urls
    assert browser.title == "chainrule training report: blobs"


@needs_matplotlib
def test_report_shows_every_section(browser, report_page):
    from selenium.webdriver.common.by import By
    open_page(browser, report_page)
    for key, title in SECTIONS.items():
        section = browser.find_element(By.ID, key)
        assert section.is_displayed()
        assert section.find_element(By.TAG_NAME, "h2").text == title
        assert section.size["height"] > 40
    loaded = browser.execute_script(
        "return [...document.images].map(i => i.complete && i.naturalWidth > 0)")
    assert loaded == [True, True]
    rows = browser.find_elements(By.CSS_SELECTOR, "#explain table.layers tbody tr")
    assert len(rows) == 2  # two layers, last first
    assert browser.find_element(By.CSS_SELECTOR, ".metric .value").text == "0.875"


def test_screenshot(browser, report_page, tmp_path):
    open_page(browser, report_page)
    browser.execute_script("document.querySelectorAll('details').forEach(d => d.open = true)")
    height = browser.execute_script("return document.documentElement.scrollHeight")
    shot = browser.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": 1280, "height": height, "scale": 1}})
    png = base64.b64decode(shot["data"])
    assert png.startswith(b"\x89PNG") and height > 2000
    mpimg = pytest.importorskip("matplotlib.image")
    image = mpimg.imread(io.BytesIO(png), format="png")
    assert image.shape[:2] == (height, 1280)
    colours = np.unique(image[::8, ::8, :3].reshape(-1, 3), axis=0)
    assert len(colours) > 50  # plots and text, not a blank page
    keep = os.environ.get("CHAINRULE_SCREENSHOT_DIR")
    (tmp_path / "report.png").write_bytes(png)
    if keep:
        os.makedirs(keep, exist_ok=True)
        with open(os.path.join(keep, "report.png"), "wb") as f:
            f.write(png)


def test_the_console_check_catches_errors(browser, tmp_path):
    # The checks above must be able to fail: a page with a script error is caught.
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><title>x</title><script>throw new Error('boom')</script>")
    console, _ = open_page(browser, bad)
    assert any("boom" in m["message"] for m in console)


def test_scripts_train_installs_what_the_report_draws_with():
    # `scripts/train --report run.html` must have matplotlib, or the report has no curves.
    import tomllib
    root = Path(__file__).resolve().parent.parent
    script = (root / "scripts" / "train").read_text(encoding="utf-8")
    extras = re.search(r'pip install [^\n]*-e "\.\[([\w,]+)\]"', script).group(1).split(",")
    optional = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))[
        "project"]["optional-dependencies"]
    installed = [req for extra in extras for req in optional[extra]]
    assert any(req.startswith("matplotlib") for req in installed), extras


def test_explain_section_states_explains_own_flags(tmp_path):
    # The flags come from r = ‖∂L/∂Zˡ‖ / ‖∂L/∂Zᴸ‖ and explain's thresholds, so the report says
    # so and shows the r of each layer.
    path = tmp_path / "run.html"
    write_report(path, **classification_run())
    page = path.read_text(encoding="utf-8")
    assert "r = ‖∂L/∂Zˡ‖ / ‖∂L/∂Zᴸ‖" in page and "r &lt; 0.001" in page and "r &gt; 100" in page
    assert "10⁻⁶" not in page and "<th>r</th>" in page
