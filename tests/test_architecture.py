"""The rules docs/design.rst states about the package's layout, kept by reading the code.

Each rule is checked on the source (Python's own ``ast``), so that a change that breaks
one fails here, not in a review:

* the core (``wsgisse/*.py``) imports only the standard library and itself; gevent only
  inside functions of ``_sync``, the one module that owns waits, wake-ups and locks;
* ``import wsgisse`` loads no subpackage (integrations, backends) and no third-party
  module;
* the core's runtime imports form no cycle;
* ``_request`` is the only module that reads a WSGI environ;
* ``_fanout`` is the only module that changes delivery state (cursors, the parked set).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "wsgisse"
CORE = sorted(PACKAGE.glob("*.py"))
STDLIB = sys.stdlib_module_names | {"_typeshed"}
# The modules that may touch the thread and greenlet machinery directly.
SYNC_ONLY = {"_thread", "gevent"}
SYNC_ONLY_NAMES = {"Lock", "RLock", "Condition", "Event", "Semaphore", "BoundedSemaphore"}


def tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def type_checking_blocks(module: ast.Module) -> set[int]:
    """The ids of the nodes under ``if TYPE_CHECKING:`` (imports that never run)."""
    hidden: set[int] = set()
    for node in ast.walk(module):
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            hidden.update(id(child) for child in ast.walk(node))
    return hidden


def imports(path: Path, *, runtime_only: bool = False) -> Iterator[tuple[ast.AST, str, bool]]:
    """(node, imported module, at module level) for every import in ``path``.

    Relative imports are named ``wsgisse.<module>``.
    """
    module = tree(path)
    hidden = type_checking_blocks(module) if runtime_only else set()
    top_level = {id(node) for node in module.body}
    for node in ast.walk(module):
        if id(node) in hidden:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node, alias.name, id(node) in top_level
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = "wsgisse" + ("." + node.module if node.module else "")
                if node.module is None:
                    for alias in node.names:
                        yield node, f"wsgisse.{alias.name}", id(node) in top_level
                    continue
                yield node, base, id(node) in top_level
            elif node.module is not None:
                yield node, node.module, id(node) in top_level


@pytest.mark.parametrize("path", CORE, ids=lambda path: path.name)
def test_the_core_imports_only_the_standard_library_and_itself(path: Path) -> None:
    foreign = []
    for node, name, top_level in imports(path):
        root = name.split(".")[0]
        if root == "wsgisse":
            assert name.count(".") <= 1 or path.name == "testing.py", (
                f"{path.name}:{node.lineno} imports the subpackage {name}"
            )
            continue
        if path.name == "_sync.py" and (root == "_thread" or (root == "gevent" and not top_level)):
            continue  # gevent only inside functions: imported once the process runs it
        if root not in STDLIB or root in SYNC_ONLY:
            foreign.append(f"{path.name}:{node.lineno} imports {name}")
    assert foreign == []


@pytest.mark.parametrize("path", CORE, ids=lambda path: path.name)
def test_only_sync_makes_locks_and_events(path: Path) -> None:
    if path.name == "_sync.py":
        return
    found = [
        f"{path.name}:{node.lineno} {ast.unparse(node)}"
        for node in ast.walk(tree(path))
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id in {"threading", "_thread"}
        and node.attr in SYNC_ONLY_NAMES | {"allocate_lock"}
    ]
    assert found == []


def test_import_wsgisse_loads_no_subpackage_and_no_third_party_module() -> None:
    script = (
        "import sys; before = set(sys.modules); import wsgisse; "
        "print('\\n'.join(sorted(set(sys.modules) - before)))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    assert "wsgisse" in loaded
    ours = [name for name in loaded if name.startswith("wsgisse.")]
    assert all(name.count(".") == 1 for name in ours), ours
    assert "wsgisse.testing" not in ours
    third_party = [name for name in loaded if name.split(".")[0] not in STDLIB | {"wsgisse"}]
    assert third_party == []


def test_the_cores_runtime_imports_form_no_cycle() -> None:
    graph: dict[str, set[str]] = {}
    for path in CORE:
        name = f"wsgisse.{path.stem}" if path.stem != "__init__" else "wsgisse"
        graph[name] = {
            imported
            for _, imported, top_level in imports(path, runtime_only=True)
            if top_level and imported.startswith("wsgisse.") and imported.count(".") == 1
        }
    cycles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        if node in trail:
            cycles.append([*trail[trail.index(node) :], node])
            return
        for target in sorted(graph.get(node, ())):
            visit(target, [*trail, node])

    for start in graph:
        visit(start, [])
    assert cycles == []


def environ_reads(module: ast.Module) -> Iterator[ast.AST]:
    """``environ[...]``, ``environ.get(...)`` and the like, on any name ending in environ."""
    for node in ast.walk(module):
        target = None
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
            target = node.value
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in {"get", "pop", "setdefault", "items", "keys", "values"}
        ):
            target = node.func.value
        if target is None:
            continue
        name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
        if name.lstrip("_").endswith("environ"):
            yield node


@pytest.mark.parametrize("path", CORE, ids=lambda path: path.name)
def test_only_the_request_module_reads_the_environ(path: Path) -> None:
    # The test client builds environs for the app under test: it writes them, and reads
    # back only what it wrote.
    if path.name in {"_request.py", "testing.py"}:
        return
    found = [f"{path.name}:{node.lineno} {ast.unparse(node)}" for node in environ_reads(tree(path))]
    assert found == []


def test_the_environ_scan_finds_a_read() -> None:
    sample = ast.parse("def f(environ):\n    return environ.get('PATH_INFO'), environ['X']")
    assert len(list(environ_reads(sample))) == 2


DELIVERY_STATE = {"cursor", "parked", "end_reason", "end_head", "prelude", "writer", "live_from"}


@pytest.mark.parametrize("path", CORE, ids=lambda path: path.name)
def test_only_the_fanout_changes_delivery_state(path: Path) -> None:
    if path.name == "_fanout.py":
        return
    found = []
    for node in ast.walk(tree(path)):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        for assigned in targets:
            target = assigned.value if isinstance(assigned, ast.Subscript) else assigned
            if (
                isinstance(target, ast.Attribute)
                and target.attr in DELIVERY_STATE
                and not (isinstance(target.value, ast.Name) and target.value.id == "self")
            ):
                found.append(f"{path.name}:{node.lineno} {ast.unparse(node)}")
    assert found == []
