"""Architecture rules of the ``clsctl`` package, checked on its source code (parsed, never imported).

**Import graph.** One node per module, a package's ``__init__.py`` being the node of the package itself
(``clsctl.models``). An edge for every ``import`` and ``from ... import`` anywhere in a module: at module level,
inside functions and methods (the lazy imports that keep ``clsctl --help`` free of torch), and under
``if TYPE_CHECKING:`` (a type-only import is still a dependency). Relative imports are resolved.
``from pkg import name`` is an edge to the submodule ``pkg.name`` when there is one, else to ``pkg``.
Names computed at run time (``importlib.import_module(name)``, ``clsctl/__init__.py``'s lazy API) are not
seen.

**Package ``__init__`` files.** Importing ``clsctl.models._factory`` makes Python run ``clsctl/models/__init__.py``
first, which imports every model family, which import ``clsctl.models._factory``. These implied parent-package
edges are *not* counted: a package's ``__init__`` is its public face, and re-exporting or registering its own
submodules there is what it is for. An explicit import of the package is counted like any other, so a family
importing ``clsctl.models`` (the package, e.g. ``from clsctl.models import model_info``) closes a cycle
``clsctl.models -> family -> clsctl.models`` and fails; inside a package, import the submodule that defines
the name.

**No cycles** (:func:`test_no_import_cycles`): no strongly connected component of more than one module.

**Layers** (:func:`test_imports_follow_the_layers`), lowest first; a module may import its own layer or a
lower one, never a higher one::

    cli (clsctl.cli, clsctl.__main__)
    analysis, deploy   one layer: each may import the other (report runs the benchmark, benchmark counts
                       FLOPs), the cycle check keeps the two from importing each other in a circle
    engine
    data
    recipe
    models             clsctl.models, plus clsctl.hub (torch.hub-style face of the zoo) and clsctl.hf_hub
                       (Hub files and the clsctl Hub-repository layout; clsctl.models.hub_models builds the
                       ``hf-hub:`` models from them and registers that name prefix with the model factory,
                       as clsctl.models.timm_models does ``timm/``, so the factory imports neither)
    registry
    base               clsctl (the root package: ``__version__`` and a lazy API that imports nothing here),
                       errors.py, atomic.py and readers.py (every layer raises clsctl errors, writes files atomically and reads the
                       files users point at through the readers), and the two file-format codecs the readers
                       use, clsctl.data.decode (image bytes -> RGB) and clsctl.models.safetensors_io: they
                       import nothing above the base, and this test keeps it so.

**No pass-through forwarders or old-name aliases** (:func:`test_no_forwarders_or_aliases`): no function whose
body (docstring and imports aside) only returns a call of another function with exactly its own parameters,
and no module-level ``new_name = old_name`` of a function or class. One exception, by design: ``clsctl.hub``'s
``load`` and ``list``, the public names the ``torch.hub`` convention asks for.

**Function length** (:func:`test_functions_are_short`): no function or method longer than 80 lines
(``def`` line to last line, docstring included, decorators not).

There is no allowlist: a new cycle, upward import or long function is fixed, not excused.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "clsctl"
MAX_FUNCTION_LINES = 80

# Lowest layer first. A prefix names a module and everything under it; "clsctl" itself means only the root module.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("base", ("clsctl", "clsctl.errors", "clsctl.atomic", "clsctl.readers", "clsctl.data.decode",
              "clsctl.models.safetensors_io")),
    ("registry", ("clsctl.registry",)),
    ("models", ("clsctl.models", "clsctl.hub", "clsctl.hf_hub")),
    ("recipe", ("clsctl.recipe",)),
    ("data", ("clsctl.data",)),
    ("engine", ("clsctl.engine",)),
    ("analysis/deploy", ("clsctl.analysis", "clsctl.deploy")),
    ("cli", ("clsctl.cli", "clsctl.__main__")),
)

# --------------------------------------------------------------------------- the checks' machinery


@dataclass(frozen=True)
class Import:
    """One import statement's edge: ``importer`` imports ``imported`` at ``path:line``."""

    importer: str
    imported: str
    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.importer} -> {self.imported}  ({self.path}:{self.line})"


def module_files(root: Path, package: str = PACKAGE) -> dict[str, Path]:
    """Module name -> file, for every ``.py`` file of ``package`` under ``root``."""
    files = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        files[".".join(parts)] = path
    return files


def _resolve(name: str, modules: Iterable[str]) -> str:
    """``name`` if it is a module, else the longest dotted prefix of it that is (a name inside a module)."""
    known = set(modules)
    parts = name.split(".")
    while parts and ".".join(parts) not in known:
        parts.pop()
    return ".".join(parts)


def imports_of(module: str, path: Path, modules: Mapping[str, Path], root: Path,
               package: str = PACKAGE) -> list[Import]:
    """Every import of another module of the package in ``path``, at any depth of its syntax tree."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    here = module if path.name == "__init__.py" else module.rpartition(".")[0]
    relpath = path.relative_to(root).as_posix()
    found: dict[Import, None] = {}  # one edge per statement, however many names it imports
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            targets = [f"{source}.{alias.name}" for alias in node.names]
        for target in targets:
            if target.split(".")[0] != package:
                continue
            imported = _resolve(target, modules)
            if imported and imported != module:
                found[Import(module, imported, relpath, node.lineno)] = None
    return list(found)


def import_graph(root: Path, package: str = PACKAGE) -> list[Import]:
    """All imports between modules of ``package``."""
    modules = module_files(root, package)
    return [edge for module, path in modules.items() for edge in imports_of(module, path, modules, root, package)]


def find_cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan's algorithm, iterative), each sorted."""
    nodes = set(graph) | {t for targets in graph.values() for t in targets}
    successors = {n: sorted(set(graph.get(n, ()))) for n in nodes}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []
    for start in sorted(nodes):
        if start in index:
            continue
        work = [(start, iter(successors[start]))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(successors[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return sorted(components)


def layer_of(module: str) -> int:
    """Index of ``module``'s layer in :data:`LAYERS` (the most specific prefix wins)."""
    best, best_length = -1, -1
    for level, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            matches = module == prefix or (prefix != PACKAGE and module.startswith(prefix + "."))
            if matches and len(prefix) > best_length:
                best, best_length = level, len(prefix)
    if best < 0:
        raise AssertionError(f"{module} has no layer: add it to LAYERS in {Path(__file__).name}")
    return best


def upward_imports(edges: Iterable[Import]) -> list[Import]:
    """Imports of a module in a higher layer than the importer's."""
    return [e for e in edges if layer_of(e.imported) > layer_of(e.importer)]


def long_functions(path: Path, root: Path, limit: int = MAX_FUNCTION_LINES) -> dict[str, int]:
    """``"path:qualified name"`` -> length in lines, for each function or method in ``path`` over ``limit``."""
    relpath = path.relative_to(root).as_posix()
    found = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                if not isinstance(child, ast.ClassDef):
                    length = child.end_lineno - child.lineno + 1
                    if length > limit:
                        found[f"{relpath}:{prefix}{child.name}"] = length
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(ast.parse(path.read_text(encoding="utf-8")), "")
    return found


@functools.cache
def package_imports() -> tuple[Import, ...]:
    return tuple(import_graph(ROOT))


@functools.cache
def package_long_functions() -> dict[str, int]:
    found = {}
    for path in module_files(ROOT).values():
        found.update(long_functions(path, ROOT))
    return found


def adjacency(edges: Iterable[Import]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for edge in edges:
        graph.setdefault(edge.importer, set()).add(edge.imported)
    return graph


def describe_cycle(component: list[str], edges: Iterable[Import]) -> str:
    members = set(component)
    inside = sorted({str(e) for e in edges if e.importer in members and e.imported in members})
    return "cycle among " + ", ".join(component) + ":\n    " + "\n    ".join(inside)


# --------------------------------------------------------------------------- the rules


def test_no_import_cycles() -> None:
    edges = package_imports()
    cycles = find_cycles(adjacency(edges))
    report = [describe_cycle(component, edges) for component in cycles]
    print("\n".join(report))
    assert not cycles, "import cycles inside clsctl:\n" + "\n".join(report)


def test_imports_follow_the_layers() -> None:
    wrong = [e for e in upward_imports(package_imports()) ]
    report = [f"{e}: {LAYERS[layer_of(e.importer)][0]} imports {LAYERS[layer_of(e.imported)][0]}" for e in wrong]
    print("\n".join(report))
    assert not wrong, "imports against the layers " + " -> ".join(n for n, _ in reversed(LAYERS)) + ":\n" + \
        "\n".join(report)


def test_every_module_has_a_layer() -> None:
    for module in module_files(ROOT):
        layer_of(module)  # raises naming the module


FORWARDER_EXCEPTIONS = {"clsctl/hub.py:load", "clsctl/hub.py:list"}  # torch.hub's public names (see above)


def _parameters(node: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    args = node.args
    names = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
    names += [a.arg for a in (args.vararg, args.kwarg) if a is not None]
    return [name for name in names if name not in ("self", "cls")]


def forwarders_and_aliases(path: Path, root: Path) -> list[str]:
    """``path:name`` of every pass-through forwarder and module-level alias in one file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    relpath = path.relative_to(root).as_posix()
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.decorator_list:
            body = [b for b in node.body if not isinstance(b, (ast.Import, ast.ImportFrom))
                    and not (isinstance(b, ast.Expr) and isinstance(b.value, ast.Constant))]
            if len(body) != 1 or not isinstance(body[0], ast.Return) or not isinstance(body[0].value, ast.Call):
                continue
            call = body[0].value
            passed = [a.id for a in call.args if isinstance(a, ast.Name)]
            passed += [k.value.id for k in call.keywords if isinstance(k.value, ast.Name) and k.arg is not None]
            if len(passed) == len(call.args) + len(call.keywords) and sorted(passed) == sorted(_parameters(node)):
                found.append(f"{relpath}:{node.name}")
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                and isinstance(node.value, ast.Name) and node.value.id[:1] != "_" and node.value.id in
                {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}):
            found.append(f"{relpath}:{node.targets[0].id} = {node.value.id}")
    return [name for name in found if name not in FORWARDER_EXCEPTIONS]


def test_no_forwarders_or_aliases() -> None:
    found = [name for path in module_files(ROOT).values() for name in forwarders_and_aliases(path, ROOT)]
    assert not found, "pass-through forwarders or aliases:\n" + "\n".join(found)


def test_the_forwarder_check_finds_them(tmp_path: Path) -> None:
    source = tmp_path / "pkg" / "mod.py"
    source.parent.mkdir()
    source.write_text(
        "def real(a, b=1):\n    return a + b\n\n"
        "def forward(a, b=1):\n    \"\"\"Doc.\"\"\"\n    from os import path\n\n    return real(a, b=b)\n\n"
        "def adds(a):\n    return real(a, 2)\n\n"
        "OldName = real\n", encoding="utf-8")
    assert forwarders_and_aliases(source, tmp_path) == ["pkg/mod.py:forward", "pkg/mod.py:OldName = real"]


def test_functions_are_short() -> None:
    long = {name: n for name, n in package_long_functions().items()}
    report = [f"{name}: {n} lines (at most {MAX_FUNCTION_LINES})" for name, n in sorted(long.items())]
    print("\n".join(report))
    assert not long, "functions too long:\n" + "\n".join(report)


# --------------------------------------------------------------------------- the checks can fail


def test_cycle_finder_finds_cycles_and_only_those() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": {"e"}, "e": set(), "x": {"y"}, "y": {"x"}, "z": {"a"}}
    assert find_cycles(graph) == [["a", "b", "c"], ["x", "y"]]
    assert find_cycles({"a": {"b"}, "b": {"c"}}) == []


@pytest.fixture()
def fake_package(tmp_path: Path) -> Path:
    """A package ``clsctl`` under ``tmp_path`` with one cycle, one upward import and one long function."""
    files = {
        "__init__.py": "",
        "errors.py": "",
        "models/__init__.py": "from clsctl.models import lenet\n",
        "models/lenet.py": "def build():\n    from clsctl.models._factory import register\n",
        "models/_factory.py": "from . import lenet  # relative, and a submodule named in from-import\n",
        "models/heads.py": "def head():\n    from clsctl.recipe.schema import Recipe\n",
        "recipe/__init__.py": "",
        "recipe/schema.py": "import clsctl.models\n",
        "data/loaders.py": "def f():\n" + "    x = 1\n" * MAX_FUNCTION_LINES,
    }
    for name, text in files.items():
        (tmp_path / "clsctl" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "clsctl" / name).write_text(text, encoding="utf-8")
    return tmp_path


def test_graph_counts_function_level_relative_and_submodule_imports(fake_package: Path) -> None:
    edges = {(e.importer, e.imported) for e in import_graph(fake_package)}
    assert edges == {("clsctl.models", "clsctl.models.lenet"), ("clsctl.models.lenet", "clsctl.models._factory"),
                     ("clsctl.models._factory", "clsctl.models.lenet"), ("clsctl.models.heads", "clsctl.recipe.schema"),
                     ("clsctl.recipe.schema", "clsctl.models")}
    graph = adjacency(import_graph(fake_package))
    assert find_cycles(graph) == [["clsctl.models._factory", "clsctl.models.lenet"]]
    upward = [(e.importer, e.imported, e.line) for e in upward_imports(import_graph(fake_package))]
    assert upward == [("clsctl.models.heads", "clsctl.recipe.schema", 2)]
    loaders = fake_package / "clsctl" / "data" / "loaders.py"
    assert long_functions(loaders, fake_package) == {"clsctl/data/loaders.py:f": MAX_FUNCTION_LINES + 1}
    assert long_functions(loaders, fake_package, limit=MAX_FUNCTION_LINES + 1) == {}
