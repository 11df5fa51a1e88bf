"""The package's layers, checked from its source (docs/design.md draws them).

Every ``.py`` file under ``src/chainrule`` is parsed with ``ast``; each import, at module level
or inside a function, relative or absolute, is an arrow of the import graph. On that graph:

- no import cycle;
- each module imports only modules of its own layer or of a layer below (``LAYERS``);
- the seams have the few importers ``ONLY_IMPORTED_BY`` names, and the arrows of ``NEVER``
  are absent;
- flat-memory tricks, dynamic imports and the environment appear only where ``ONLY_IN`` says,
  and compiled sources only under ``kernels/``;
- third-party packages are imported only where ``DEPENDENCIES`` says, and ``import chainrule``
  (in a fresh interpreter) loads nothing beyond NumPy, safetensors and the standard library.

Rules name modules relative to the package (``"layers.linear"``; ``"layers"`` is
``layers/__init__.py``, ``"__init__"`` the package's own) with ``fnmatch`` patterns. The
module(s) of argument checks are found by what they define (see :func:`validation_modules`),
whatever their file is called. Each checker is also run on a made-up package or graph that
breaks its rule, so that a checker which cannot fail is caught too.
"""

from __future__ import annotations

import ast
import fnmatch
import importlib.machinery
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "chainrule"
VALIDATION = "<validation>"  # stands for the module(s) of argument checks in the tables

# Bottom first. A module may import modules of its own layer and of the layers below it.
LAYERS = [
    ("ground", ["errors", "parameter", "init", "_rng", "progress", VALIDATION,
                "kernels", "kernels.*", "arrays"]),
    ("model", ["module", "buffer"]),
    ("layers", ["layers", "layers.*"]),
    ("learning", ["losses", "optimizers", "schedules", "callbacks", "gradcheck", "explain",
                  "check"]),
    ("files", ["_files", "_files.*", "serialization", "plotting"]),
    ("training", ["history", "checkpoint", "training"]),
    ("face", ["__init__"]),
    ("apps", ["_build", "datasets", "report", "cli", "sklearn", "__main__", "export",
              "export.*"]),
]

# module -> the only modules that may import it (the seams stay narrow)
ONLY_IMPORTED_BY = {
    "buffer": ["layers.sequential", "optimizers", "training"],
    "kernels": ["optimizers", "layers.activations", "layers.linear", "losses"],
    "_files": ["_files.*", "serialization"],
    "_files.*": ["_files", "_files.*", "serialization"],
    "checkpoint": ["training"],
}

# (importer, imported, why): arrows that must not exist, even where the layers allow them
NEVER = [
    ("kernels*", "*", "a kernel is found by its class's name: kernels import no chainrule module"),
    ("optimizers", "layers*", "an optimizer sees parameters and a buffer, never a layer"),
    ("checkpoint", "training", "checkpoint files are written by the loop, never drive it"),
]


class Use(NamedTuple):
    what: str
    attrs: frozenset[str]    # attributes (x.base, np.require) or names imported from a module
    modules: frozenset[str]  # modules imported (by top-level name), e.g. ctypes
    allowed: list[str]
    names: frozenset[str] = frozenset()  # bare names, e.g. __import__


# Names that only some modules may use at all, found as attributes and imports in the AST.
ONLY_IN = [
    Use("flat memory: views of another array's memory", frozenset(
        {"base", "require", "as_strided", "stride_tricks", "strides", "__array_interface__",
         "ctypes", "frombuffer", "shares_memory", "may_share_memory"}),
        frozenset({"ctypes", "mmap"}), ["buffer", "kernels", "kernels.*"]),
    # all_finite takes one pass over a contiguous array through a raveled view
    Use("memory layout: contiguity flags", frozenset({"c_contiguous", "f_contiguous"}),
        frozenset(), ["buffer", "kernels", "kernels.*", VALIDATION]),
    Use("the environment (CHAINRULE_KERNELS)", frozenset({"environ", "getenv", "putenv"}),
        frozenset(), ["kernels"]),
    Use("imports the graph cannot see", frozenset({"import_module"}), frozenset({"importlib"}),
        [], frozenset({"__import__"})),
]

# third-party package -> (modules that may import it at all, those that may at module level)
DEPENDENCIES = {
    "numpy": (["*"], ["*"]),
    "safetensors": (["_files.container"], ["_files.container"]),
    "sklearn": (["sklearn", "datasets", "export.sklearn_mlp"], ["sklearn"]),
    "onnx": (["export.onnx_graph"], []),
    "torch": (["export.torch_modules", "export.torch_file"], []),
    "matplotlib": (["plotting"], []),
    "tqdm": (["progress"], []),
    "dask": (["arrays"], []),
}
OPTIONAL = ("sklearn", "matplotlib", "tqdm", "scipy", "torch", "pandas", "onnx", "onnxruntime",
            "dask", "ray", "zarr", "h5py")

COMPILED_SUFFIXES = (".c", ".h", ".cpp", ".pyx", *importlib.machinery.EXTENSION_SUFFIXES)
VALIDATION_NAMES = {"check_float", "check_dtype", "check_positive_int", "as_float_matrix",
                    "check_finite", "all_finite", "check_same_length", "check_state_dict"}


# -- reading the package -----------------------------------------------------------------------

class Import(NamedTuple):
    target: str       # a module of the package (short name), or a top-level outside package
    line: int
    at_import: bool   # at module or class level, so it runs when the module is imported
    internal: bool


class Package(NamedTuple):
    trees: dict[str, ast.Module]
    imports: dict[str, list[Import]]
    files: list[Path]


def short_name(path: Path, src: Path) -> str:
    parts = path.relative_to(src).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts)


def read_package(src: Path, package: str = "chainrule") -> Package:
    paths = sorted(src.rglob("*.py"))
    names = {short_name(p, src): p for p in paths}
    full = {name: package if name == "__init__" else f"{package}.{name}" for name in names}
    short = {f: s for s, f in full.items()}
    trees = {name: ast.parse(p.read_text(), str(p)) for name, p in names.items()}
    imports = {}
    for name, tree in trees.items():
        here = full[name] if names[name].name == "__init__.py" else full[name].rpartition(".")[0]
        imports[name] = [i for node, at_import in _import_nodes(tree)
                         for i in _resolve(node, here, package, short, at_import)
                         if i.target != name]
    return Package(trees, imports, sorted(p for p in src.rglob("*") if p.is_file()))


def _import_nodes(tree: ast.AST, at_import: bool = True):
    """``(Import or ImportFrom node, whether it runs at import)`` for every import in ``tree``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, at_import
        inside = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        yield from _import_nodes(node, at_import and not inside)


def _resolve(node, here: str, package: str, short: dict, at_import: bool) -> list[Import]:
    """The modules an import statement in package ``here`` names: ``from X import Y`` is
    module ``X.Y`` where that is a module of the package, else ``X``."""
    def one(module: str) -> Import:
        if module == package or module.startswith(package + "."):
            while module not in short:
                module = module.rpartition(".")[0]
            return Import(short[module], node.lineno, at_import, True)
        return Import(module.partition(".")[0], node.lineno, at_import, False)

    if isinstance(node, ast.Import):
        return [one(alias.name) for alias in node.names]
    base = here.rsplit(".", node.level - 1)[0] if node.level else ""
    module = ".".join(part for part in (base, node.module) if part)
    return [one(f"{module}.{alias.name}" if f"{module}.{alias.name}" in short else module)
            for alias in node.names]


def import_graph(pkg: Package) -> dict[str, dict[str, int]]:
    """module -> {imported module of the package: line of the first import}."""
    graph = {name: {} for name in pkg.imports}
    for name, imports in pkg.imports.items():
        for i in imports:
            if i.internal:
                graph[name].setdefault(i.target, i.line)
    return graph


def validation_modules(trees: dict[str, ast.Module]) -> list[str]:
    """The modules of argument checks: named ``_check*`` or ``_valid*``, or defining one of
    the checks (``check_float``, ``as_float_matrix``, ...) at top level."""
    def defines(tree):
        return {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    return sorted(name for name, tree in trees.items()
                  if fnmatch.fnmatch(name, "_check*") or fnmatch.fnmatch(name, "_valid*")
                  or defines(tree) & VALIDATION_NAMES)


def matches(name: str, patterns: list[str], validation: list[str]) -> bool:
    return any(name in validation if p == VALIDATION else fnmatch.fnmatch(name, p)
               for p in patterns)


# -- the checkers: each returns what breaks its rule (empty: the rule holds) --------------------

def find_cycle(graph: dict[str, dict[str, int]]) -> list[str]:
    """One import cycle as ``[a, b, ..., a]``, or ``[]``."""
    done, path = set(), []

    def visit(node):
        if node in path:
            return path[path.index(node):] + [node]
        if node in done:
            return []
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            cycle = visit(nxt)
            if cycle:
                return cycle
        path.pop()
        done.add(node)
        return []

    for start in sorted(graph):
        cycle = visit(start)
        if cycle:
            return cycle
    return []


def layering_breaks(graph, layers, validation=()) -> list[str]:
    def level(name):
        return next((i for i, (_, pats) in enumerate(layers)
                     if matches(name, pats, validation)), None)

    breaks = [f"{name} is in no layer: give it one in LAYERS (and in docs/design.md)"
              for name in sorted(graph) if level(name) is None]
    for a in sorted(graph):
        for b, line in sorted(graph[a].items()):
            la, lb = level(a), level(b)
            if la is not None and lb is not None and lb > la:
                breaks.append(f"{a}:{line} ({layers[la][0]}) imports {b}, of the higher layer "
                              f"{layers[lb][0]}")
    return breaks


def importer_breaks(graph, only_imported_by, validation=()) -> list[str]:
    return [f"{a}:{line} imports {b}, which only {', '.join(allowed)} may import"
            for a in sorted(graph) for b, line in sorted(graph[a].items())
            for pattern, allowed in only_imported_by.items()
            if matches(b, [pattern], validation) and not matches(a, allowed, validation)]


def never_breaks(graph, never, validation=()) -> list[str]:
    return [f"{a}:{line} imports {b}: {why}"
            for a in sorted(graph) for b, line in sorted(graph[a].items())
            for importer, imported, why in never
            if matches(a, [importer], validation) and matches(b, [imported], validation)]


def _uses(node: ast.AST, use: Use) -> set[str]:
    """What of ``use`` the AST node names: an attribute, a bare name or an import."""
    if isinstance(node, ast.Attribute):
        return {node.attr} & use.attrs
    if isinstance(node, ast.Name):
        return {node.id} & use.names
    if isinstance(node, ast.Import):
        return {a.name.partition(".")[0] for a in node.names} & use.modules
    if isinstance(node, ast.ImportFrom) and not node.level:
        return ({node.module.partition(".")[0]} & use.modules
                | {a.name for a in node.names} & use.attrs)
    return set()


def use_breaks(trees, uses, validation=()) -> list[str]:
    breaks = sorted((name, node.lineno, hit, use)
                    for name, tree in trees.items() for node in ast.walk(tree)
                    for use in uses for hit in _uses(node, use)
                    if not matches(name, use.allowed, validation))
    return [f"{name}:{line} uses {hit} ({use.what}); only "
            f"{', '.join(use.allowed) or 'no module'} may" for name, line, hit, use in breaks]


def dependency_breaks(imports, dependencies) -> list[str]:
    breaks = []
    for name in sorted(imports):
        for i in imports[name]:
            if i.internal or i.target in sys.stdlib_module_names or i.target == "__future__":
                continue
            anywhere, at_import = dependencies.get(i.target, ([], []))
            if not matches(name, anywhere, ()):
                breaks.append(f"{name}:{i.line} imports {i.target}, which only "
                              f"{', '.join(anywhere) or 'no module'} may import")
            elif i.at_import and not matches(name, at_import, ()):
                breaks.append(f"{name}:{i.line} imports {i.target} at module level; import it "
                              "inside the function that needs it")
    return breaks


def compiled_outside_kernels(files, src) -> list[str]:
    return [str(f.relative_to(src)) for f in files
            if f.name.endswith(COMPILED_SUFFIXES) and f.relative_to(src).parts[0] != "kernels"]


def loaded_beyond(baseline: str, statement: str) -> tuple[set[str], set[str]]:
    """In a fresh interpreter: the top-level modules, outside the standard library, that
    ``baseline`` loads, then those that ``statement`` loads on top of it."""
    code = ("import json, sys\n"
            "def tops(): return {m.partition('.')[0] for m in sys.modules}\n"
            f"first = tops()\n{baseline}\nsecond = tops()\n{statement}\n"
            "print(json.dumps([sorted(second - first), sorted(tops() - second)]))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(SRC.parent), *filter(None, [os.environ.get("PYTHONPATH")])])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True, timeout=120).stdout
    base, extra = json.loads(out.splitlines()[-1])
    return ({m for m in base if m not in sys.stdlib_module_names},
            {m for m in extra if m not in sys.stdlib_module_names})


# -- the rules, on chainrule ---------------------------------------------------------------------

PKG = read_package(SRC)
GRAPH = import_graph(PKG)
CHECKS = validation_modules(PKG.trees)


def test_every_module_is_read():
    assert len(GRAPH) == len(list(SRC.rglob("*.py"))) > 30
    assert CHECKS, "no module of argument checks found: update VALIDATION_NAMES"
    assert sum(not i.at_import for imports in PKG.imports.values() for i in imports) > 5


def test_no_import_cycle():
    cycle = find_cycle(GRAPH)
    assert not cycle, "import cycle: " + " -> ".join(
        f"{a} (line {GRAPH[a][b]})" for a, b in zip(cycle, cycle[1:])) + f" -> {cycle[-1]}"


def test_each_module_imports_only_its_layer_and_the_ones_below():
    assert layering_breaks(GRAPH, LAYERS, CHECKS) == []


def test_the_seams_have_only_their_importers():
    assert importer_breaks(GRAPH, ONLY_IMPORTED_BY, CHECKS) == []


def test_forbidden_arrows_are_absent():
    assert never_breaks(GRAPH, NEVER, CHECKS) == []


def test_flat_memory_environment_and_dynamic_imports_stay_in_their_modules():
    assert use_breaks(PKG.trees, ONLY_IN, CHECKS) == []


def test_compiled_code_lives_in_kernels():
    assert compiled_outside_kernels(PKG.files, SRC) == []


def test_third_party_imports_stay_where_they_belong():
    assert dependency_breaks(PKG.imports, DEPENDENCIES) == []


def test_import_chainrule_loads_numpy_and_safetensors_only():
    base, extra = loaded_beyond("import numpy, numpy.random, safetensors.numpy", "import chainrule")
    assert {"numpy", "safetensors"} <= base
    assert extra == {"chainrule"}


def test_no_module_but_the_estimators_loads_an_optional_dependency_on_import():
    modules = sorted(n for n in GRAPH if n not in ("sklearn", "__main__", "__init__"))
    _, extra = loaded_beyond("", "\n".join(f"import chainrule.{n}" for n in modules))
    assert extra.isdisjoint(OPTIONAL)


# -- each checker can fail -----------------------------------------------------------------------

def _fake_package(tmp_path, files: dict[str, str]) -> Package:
    for name, text in files.items():
        path = tmp_path / "chainrule" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return read_package(tmp_path / "chainrule")


def test_imports_are_read_relative_absolute_and_inside_functions(tmp_path):
    pkg = _fake_package(tmp_path, {
        "__init__.py": "from .a import x\nfrom . import b as b\n",
        "a.py": "import numpy as np\nfrom .sub import leaf\nx = 1\n",
        "b.py": "def f():\n    import chainrule.a\n    from . import __version__\n",
        "sub/__init__.py": "from ..b import f\n",
        "sub/leaf.py": "class K:\n    from .. import a\n",
    })
    assert import_graph(pkg) == {"__init__": {"a": 1, "b": 2}, "a": {"sub.leaf": 2},
                                 "b": {"a": 2, "__init__": 3}, "sub": {"b": 1},
                                 "sub.leaf": {"a": 2}}
    assert [(i.target, i.at_import) for i in pkg.imports["b"]] == [("a", False),
                                                                   ("__init__", False)]
    assert pkg.imports["sub.leaf"][0].at_import  # a class body runs at import
    assert pkg.imports["a"][0] == Import("numpy", 1, True, False)


def test_a_cycle_is_found_and_named(tmp_path):
    pkg = _fake_package(tmp_path, {"__init__.py": "", "a.py": "from . import b\n",
                                   "b.py": "def f():\n    from .c import g\n",
                                   "c.py": "from .a import h\n"})
    assert find_cycle(import_graph(pkg)) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b": 1}, "b": {}, "c": {"a": 1}}) == []


def test_an_arrow_up_and_a_module_in_no_layer_break_the_layering():
    layers = [("low", ["base", VALIDATION]), ("high", ["top.*"])]
    graph = {"base": {"top.x": 3}, "_checks": {}, "top.x": {"base": 1}, "stray": {}}
    assert layering_breaks(graph, layers, ["_checks"]) == [
        "stray is in no layer: give it one in LAYERS (and in docs/design.md)",
        "base:3 (low) imports top.x, of the higher layer high"]


def test_an_importer_not_listed_and_an_arrow_of_never_break_their_rules():
    graph = {"layers.linear": {"buffer": 7, "optimizers": 8}, "training": {"buffer": 2}}
    assert importer_breaks(graph, {"buffer": ["training"]}) == [
        "layers.linear:7 imports buffer, which only training may import"]
    assert never_breaks(graph, [("layers*", "optimizers", "no")]) == [
        "layers.linear:8 imports optimizers: no"]


def test_a_flat_memory_trick_outside_the_seam_is_found(tmp_path):
    pkg = _fake_package(tmp_path, {
        "layers/linear.py": "import ctypes\nimport numpy as np\n"
                            "W = np.require(A, requirements='C')\nok = W.base is None\n",
        "buffer.py": "import numpy as np\nW = np.require(A, requirements='W')\n",
        "_valid.py": "def f(W):\n    return W.flags.c_contiguous\n",
        "cli.py": "import importlib, os\nos.environ['X']\n",
    })
    assert use_breaks(pkg.trees, ONLY_IN, validation_modules(pkg.trees)) == [
        "cli:1 uses importlib (imports the graph cannot see); only no module may",
        "cli:2 uses environ (the environment (CHAINRULE_KERNELS)); only kernels may",
        "layers.linear:1 uses ctypes (flat memory: views of another array's memory); only "
        "buffer, kernels, kernels.* may",
        "layers.linear:3 uses require (flat memory: views of another array's memory); only "
        "buffer, kernels, kernels.* may",
        "layers.linear:4 uses base (flat memory: views of another array's memory); only "
        "buffer, kernels, kernels.* may"]


def test_a_third_party_import_out_of_place_is_found(tmp_path):
    pkg = _fake_package(tmp_path, {
        "layers/linear.py": "import torch\nimport numpy\nimport json\n",
        "progress.py": "import tqdm\ndef bar():\n    import tqdm\n",
    })
    assert dependency_breaks(pkg.imports, DEPENDENCIES) == [
        "layers.linear:1 imports torch, which only export.torch_modules, export.torch_file "
        "may import",
        "progress:1 imports tqdm at module level; import it inside the function that needs it"]


def test_compiled_code_outside_kernels_is_found(tmp_path):
    files = [tmp_path / "kernels" / "adam.c", tmp_path / "layers" / "fast.c",
             tmp_path / f"_x{importlib.machinery.EXTENSION_SUFFIXES[0]}"]
    assert compiled_outside_kernels(files, tmp_path) == [
        str(Path("layers", "fast.c")), f"_x{importlib.machinery.EXTENSION_SUFFIXES[0]}"]


def test_a_dependency_loaded_on_import_is_seen():
    base, extra = loaded_beyond("import numpy", "import json, numpy.linalg, safetensors")
    assert "numpy" in base and extra == {"safetensors"}
