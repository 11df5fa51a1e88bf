"""The notebooks in notebooks/ run from top to bottom without error, and cite only what the notes
contain.

Each notebook executes in a fresh kernel started with this very interpreter (a kernel spec
written to a temporary folder, so a ``python3`` spec elsewhere on the machine cannot pick
another Python), in the notebooks folder, with a per-cell timeout. The tests skip when
nbclient, nbformat or ipykernel is missing (the "notebooks" extra installs them).
"""

import json
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
# One per part of chapter 6, in the order of docs/notebooks.md.
PARTS = ["01_two_neuron_network", "02_matrix_form", "03_training_loop", "04_batch_sizes",
         "05_adaptive_step_sizes", "06_vanishing_exploding", "07_regularization"]
CHECK_CITATIONS = ROOT.parent / "shared" / "tools" / "check_citations.py"
CELL_TIMEOUT = 60  # seconds; every cell is meant to take a few at most


def test_one_notebook_per_part():
    assert [p.stem for p in NOTEBOOKS] == PARTS


@pytest.fixture(scope="module")
def kernel_dir(tmp_path_factory):
    pytest.importorskip("nbformat")
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    pytest.importorskip("matplotlib")
    folder = tmp_path_factory.mktemp("kernels")
    spec = folder / "chainrule-tests"
    spec.mkdir()
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "chainrule tests", "language": "python"}))
    return folder


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, kernel_dir, tmp_path, monkeypatch):
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    # One thread per BLAS call: the suite shares a few cores, and these arrays are tiny.
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(name, "1")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    # No user profile, startup files or history: the kernel sees only the notebook.
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    notebook = nbformat.read(path, as_version=4)
    manager = KernelManager(kernel_name="chainrule-tests",
                            kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernel_dir)]))
    client = NotebookClient(notebook, km=manager, timeout=CELL_TIMEOUT,
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()  # raises CellExecutionError, naming the cell, on any error


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_committed_without_outputs(path):
    notebook = json.loads(path.read_text())
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, (
                f"{path.name}: a code cell has outputs; clear them before committing")
    assert "widgets" not in notebook["metadata"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_exercise_has_a_solution_block_and_a_check(path):
    """The nbgrader convention: a solution between BEGIN and END SOLUTION markers, which a
    teacher's tool replaces for the student's copy, and after it a cell that asserts."""
    cells = [("".join(c["source"]), c["cell_type"]) for c in json.loads(path.read_text())["cells"]]
    solutions = [i for i, (text, kind) in enumerate(cells)
                 if kind == "code" and "### BEGIN SOLUTION" in text]
    assert len(solutions) >= 2, f"{path.name}: {len(solutions)} exercises"
    for i in solutions:
        text = cells[i][0]
        assert text.count("### BEGIN SOLUTION") == text.count("### END SOLUTION")
        assert "assert" in cells[i + 1][0] and cells[i + 1][1] == "code", (
            f"{path.name}: the cell after exercise cell {i} does not check it")


def test_notebook_citations_are_in_the_notes(tmp_path):
    """The shared citation checker, run on a copy of the notebooks alone."""
    if not CHECK_CITATIONS.exists():
        pytest.skip(f"{CHECK_CITATIONS} is not here (the notes live outside the repository)")
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    run = subprocess.run([sys.executable, str(CHECK_CITATIONS), str(tmp_path)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    checked = int(run.stdout.strip().splitlines()[-1].split()[0])
    assert checked >= 3 * len(NOTEBOOKS), f"only {checked} citations in the notebooks: {run.stdout}"
