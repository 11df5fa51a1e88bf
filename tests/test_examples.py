"""Every example runs with tiny settings, prints what its notes section claims, and plots."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

CASES = {  # script: lines or fragments its output must contain
    "two_neuron_backprop.py": ["hand and chainrule agree: True", "gradcheck: max relative error",
                               "(ok)", "< old loss"],
    "batch_sizes.py": ["1 (SGD)", "16 (mini)", "all (batch)",
                       "more progress per epoch than batch descent: True",
                       "SGD's steps are noisier than mini-batches': True",
                       "lowest training loss after 3 epochs: "],
    "adaptive_optimizers.py": ["SGD", "Momentum", "Adagrad", "RMSprop", "Adadelta", "Adam",
                               "lowest validation loss"],
    "vanishing_gradients.py": ["sigmoid, gaussian 1/m", "  vanishing", "relu, he 2/m",
                               "diverged"],
    "regularization.py": ["none", "early stopping", "weight decay", "perturbation", "dropout",
                          "batch norm"],
    "custom_module.py": ["gradcheck of PReLU:", "gradcheck: ok", "gradcheck of BuggyPReLU:",
                         "modules.1.a    ", "NOT OK", "learned slopes a"],
}


def test_every_example_is_listed():
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(CASES)


@pytest.mark.parametrize("script", sorted(CASES))
def test_example_is_short(script):
    assert len((EXAMPLES / script).read_text(encoding="utf-8").splitlines()) <= 100


@pytest.mark.parametrize("script", sorted(CASES))
def test_example_runs(script, tmp_path):
    plot = tmp_path / "plot.png"
    command = [sys.executable, str(EXAMPLES / script), "--quick"]
    if HAS_MATPLOTLIB:  # the examples print without it; --plot needs it
        command += ["--plot", str(plot)]
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONIOENCODING": "utf-8"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for piece in CASES[script]:
        assert piece in done.stdout, piece
    if HAS_MATPLOTLIB:
        assert plot.read_bytes().startswith(b"\x89PNG")


QUOTED = ["two_neuron_backprop", "batch_sizes"]  # a second each


@pytest.mark.parametrize("script", QUOTED)
def test_examples_page_quotes_what_the_scripts_print(script, tmp_path):
    # Every number in the page's summary of a script is in what the script prints.
    page = (EXAMPLES.parent / "docs" / "examples.md").read_text(encoding="utf-8")
    summary = re.search(rf"^- \*\*{script}\*\*:(.*?)(?=^- |\Z)", page, re.S | re.M).group(1)
    numbers = re.findall(r"-?\d+\.\d+", summary)
    assert numbers
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    done = subprocess.run([sys.executable, str(EXAMPLES / f"{script}.py")], capture_output=True,
                          text=True, timeout=120, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert [x for x in numbers if x not in done.stdout] == []


# -- the documentation follows the code ----------------------------------------------------

DOCS = EXAMPLES.parent / "docs"
SRC = EXAMPLES.parent / "src" / "chainrule"
HEADER = "| notes | formula | chainrule | where |"


def _cells(line: str) -> list[str]:
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def excerpt_rows():
    """``(page, chainrule cell, file)`` for every row of the formula-beside-code tables."""
    rows = []
    for page in sorted((DOCS / "notes").glob("*.md")):
        lines = page.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            if line.strip() != HEADER:
                continue
            for row in lines[i + 2:]:
                if not row.startswith("|"):
                    break
                notes, formula, code, where = _cells(row)
                files = re.findall(r"`([\w/]+\.py)`", where)
                rows.append((page.name, code, files[0] if files else None))
    return rows


def test_docs_have_formula_tables():
    pages = {page for page, _, _ in excerpt_rows()}
    # Every page of the notes has one, except the reading guide and the conventions page.
    assert pages == {p.name for p in (DOCS / "notes").glob("*.md")} - {"index.md",
                                                                        "conventions.md"}
    assert len(excerpt_rows()) > 50


@pytest.mark.parametrize("page, code, path", excerpt_rows(),
                         ids=[f"{p}:{c[:40]}" for p, c, _ in excerpt_rows()])
def test_docs_code_is_copied_from_the_source(page, code, path):
    # Every `snippet` in the chainrule column appears, verbatim up to spaces, in the file
    # named in the where column: the pages cannot drift away from the code.
    assert path is not None, f"{page}: a row without a file"
    source = " ".join((SRC / path).read_text(encoding="utf-8").split())
    snippets = re.findall(r"`([^`]+)`", code)
    assert snippets, f"{page}: a row without code"
    for snippet in snippets:
        text = re.escape(" ".join(snippet.replace("\\|", "|").split()))
        # Whole expressions only: `x @ W` must not match inside `x @ W.T` or `f(x @ W)[0]`.
        assert re.search(rf"(?<![\w.]){text}(?![\w.(\[])", source), (page, snippet)


def test_mkdocs_nav_lists_every_page():
    config = (EXAMPLES.parent / "mkdocs.yml").read_text(encoding="utf-8")
    listed = set(re.findall(r":\s*([\w/.-]+\.md)\s*$", config, flags=re.M))
    pages = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")}
    assert listed == pages


PAGES = ["index.md", "tutorial.md", "seeing.md", "notes/networks.md", "notes/activations.md",
         "notes/backprop.md", "notes/training.md", "notes/conventions.md"]


@pytest.mark.parametrize("page", PAGES)
def test_docs_python_blocks_run(page, tmp_path, monkeypatch, capsys):
    import chainrule as cr
    text = (DOCS / page).read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks
    if "datasets.load" in text or "chainrule.sklearn" in text:
        pytest.importorskip("sklearn")
    if ".plot(" in text or "plotting" in text:
        pytest.importorskip("matplotlib")
    from chainrule.explain import explain
    if not callable(getattr(cr, "explain", None)):  # until the package exports the function
        monkeypatch.setattr(cr, "explain", explain, raising=False)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, f"docs/{page}", "exec"), namespace)  # noqa: S102
    capsys.readouterr()


def test_mkdocs_builds(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("pymdownx")  # arithmatex leaves the formulas for KaTeX
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q",
                           "-f", str(EXAMPLES.parent / "mkdocs.yml"), "-d", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "notes" / "backprop" / "index.html").exists()
