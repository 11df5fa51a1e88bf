"""The documentation site: its formulas are typeset by the KaTeX shipped in docs/js/katex.

``mkdocs build`` turns ``$...$`` and ``$$...$$`` into ``.arithmatex`` elements
(pymdownx.arithmatex, generic mode); ``js/katex-init.js`` typesets them in the browser. The
browser tests drive the system's Chromium through Selenium, as tests/test_report.py does, and
are skipped when either is missing.
"""

from __future__ import annotations

import functools
import http.server
import json
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTES_PAGES = sorted(p.stem for p in (ROOT / "docs" / "notes").glob("*.md"))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    pytest.importorskip("mkdocs")
    pytest.importorskip("pymdownx")
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q",
                           "-f", str(ROOT / "mkdocs.yml"), "-d", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return out


def page(site: Path, name: str) -> Path:
    return site / "notes" / ("" if name == "index" else name) / "index.html"


def test_formulas_are_left_for_katex_and_katex_ships_with_the_site(site):
    html = page(site, "backprop").read_text(encoding="utf-8")
    assert html.count('class="arithmatex"') > 20
    assert r"\frac{\partial L}{\partial W^\ell}" in html  # the matrix-form chain rule
    for local in ["js/katex/katex.min.js", "js/katex/contrib/auto-render.min.js",
                  "js/katex-init.js", "js/katex/katex.min.css"]:
        assert local in html and (site / local).is_file(), local
    fonts = re.findall(r"url\((fonts/[\w-]+\.woff2)\)",
                       (site / "js/katex/katex.min.css").read_text(encoding="utf-8"))
    assert fonts and all((site / "js/katex" / f).is_file() for f in fonts)
    # No script or style sheet from elsewhere: the site works offline.
    assert not re.search(r"<(script|link)[^>]+(src|href)=\"(https?:)?//", html)


def test_no_dollar_math_is_left_untypeset(site):
    # A $ that arithmatex did not take (e.g. a formula broken by a table's |) shows as text.
    for name in NOTES_PAGES:
        html = page(site, name).read_text(encoding="utf-8")
        prose = re.sub(r"<(code|pre)\b.*?</\1>", "", html, flags=re.S)
        assert "$" not in re.sub(r'<(span|div) class="arithmatex">.*?</\1>', "", prose,
                                 flags=re.S), name


# -- in a real browser ---------------------------------------------------------------------

# ``browser``: a headless Chromium, from conftest.py (skips without one).


@pytest.fixture(scope="module")
def server(site):
    """The site over HTTP on localhost (the search's web worker refuses file: URLs)."""
    handler = functools.partial(Quiet, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def url(server: str, name: str) -> str:
    return f"{server}/notes/{'' if name == 'index' else name + '/'}"


def open_page(driver, address: str):
    """Load ``address``; return its console messages and the URLs it requested."""
    driver.get_log("browser")
    driver.get_log("performance")
    driver.get(address)
    console = driver.get_log("browser")
    events = [json.loads(e["message"])["message"] for e in driver.get_log("performance")]
    urls = [e["params"]["request"]["url"] for e in events
            if e["method"] == "Network.requestWillBeSent"]
    return console, [u for u in urls if not u.startswith("chrome://")]


COUNT_JS = """return {
  formulas: document.querySelectorAll('.arithmatex').length,
  typeset: document.querySelectorAll('.arithmatex .katex').length,
  untypeset: [...document.querySelectorAll('.arithmatex')]
      .filter(e => !e.querySelector('.katex')).map(e => e.textContent).slice(0, 3),
  errors: [...document.querySelectorAll('.katex-error')].map(e => e.textContent).slice(0, 3),
  displays: document.querySelectorAll('.katex-display').length,
};"""


@pytest.mark.parametrize("name", NOTES_PAGES)
def test_every_formula_is_typeset(browser, server, name):
    console, urls = open_page(browser, url(server, name))
    found = browser.execute_script(COUNT_JS)
    assert found["untypeset"] == [] and found["errors"] == [], found
    assert found["typeset"] == found["formulas"], found
    assert all(u.startswith((server, "data:")) for u in urls), urls  # nothing from elsewhere
    assert [m for m in console if m["level"] == "SEVERE"] == []


def test_notation_17s_diagonal_matrix_is_drawn_as_a_matrix(browser, server):
    open_page(browser, url(server, "activations"))
    found = browser.execute_script(COUNT_JS)
    assert found["formulas"] > 10 and found["displays"] >= 1
    # KaTeX lays a matrix out as columns of rows; its MathML copy keeps the structure.
    rows = browser.execute_script(
        "return [...document.querySelectorAll('.katex-display mtable')]"
        ".map(t => t.querySelectorAll('mtr').length);")
    assert 4 in rows, rows  # the 4 rows of the diagonal f'(z) matrix
    fonts = browser.execute_script(
        "return document.fonts.ready.then(() => document.fonts.check('16px KaTeX_Main'));")
    assert fonts  # the shipped woff2 fonts loaded
