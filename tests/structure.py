"""The shape of the house, measured from the code: layers, import cycles and module size.

Run it from the repository root with ``make structure`` (or ``python -m tests.structure``); it prints
every violation as ``file:line: reason`` and exits 1 if there is any. ``tests/test_structure.py``
runs the same checks in the suite.

The rules (ARCHITECTURE.md, issue 19 "a straight house"):

- the layers follow the flow, ``events < store < processors < projections < gateway``: a module
  may import from its own layer or a lower one, never a higher one (``tests/`` is exempt);
- no two modules of the project import each other, directly or through others;
- no module is over ``MAX_LINES`` lines;
- ``sq processor X`` runs ``processors/X/`` (a connector, ``processors/connector/X/``);
- there is one ``step``: ``processors.fold.step`` (the host's fold) alone calls decide and evolve together.

Every import counts, wherever it is written (module level, inside a function, under
``TYPE_CHECKING``): an import hidden in a function body still ties the two modules together.
``import a.b.c`` and ``from a.b import c`` are edges to the module ``a.b.c``; the parent packages
Python initialises on the way are not edges, or every package ``__init__`` that re-exports its
modules would make a cycle with each of them.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

LAYERS: tuple[str, ...] = ("events", "store", "processors", "projections", "gateway")
"""The top-level packages, lowest first: each may import only from itself and those before it."""

MAX_LINES = 450


@dataclass(frozen=True, slots=True)
class Import:
    """One import of a project module: who imports what, and where."""

    source: str  # the importing module, dotted
    target: str  # the imported module, dotted
    path: Path  # the importing file
    line: int


@dataclass(frozen=True, slots=True)
class Violation:
    """One breach of a rule, where it is written; `key` names it without the line (see KNOWN)."""

    path: Path
    line: int
    reason: str
    key: tuple[str, ...]

    def __str__(self) -> str:
        return f"{_relative(self.path)}:{self.line}: {self.reason}"


KNOWN: dict[tuple[str, ...], str] = {}
"""Violations being fixed elsewhere, each with who or what removes it. The check reports them but does
not fail on them; it fails on any other violation, and on an entry here that no longer occurs (delete it)."""


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def modules(root: Path = ROOT) -> dict[str, Path]:
    """Every module of the layered packages, by dotted name."""
    found: dict[str, Path] = {}
    for layer in LAYERS:
        for path in sorted((root / layer).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _resolve(name: str, known: dict[str, Path]) -> str | None:
    """The project module a dotted name lands in: the longest known prefix (an attribute import
    such as ``from events.bus import Bus`` lands in ``events.bus``)."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in known:
            return candidate
        parts.pop()
    return None


def imports(known: dict[str, Path] | None = None) -> Iterator[Import]:
    """Every import of a project module by a project module."""
    known = modules() if known is None else known
    for source, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        package = source if _is_package(path) else source.rpartition(".")[0]
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    target = _resolve(alias.name, known)
                    if target is not None:
                        yield Import(source, target, path, node.lineno)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base_parts = package.split(".")
                    if node.level > 1:
                        base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                    base = ".".join(base_parts + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                for alias in node.names:
                    # ``from a.b import c`` imports the module a.b.c when there is one.
                    target = _resolve(f"{base}.{alias.name}", known) if alias.name != "*" else None
                    if target is None or target != f"{base}.{alias.name}":
                        target = _resolve(base, known)
                    if target is not None:
                        yield Import(source, target, path, node.lineno)


def _layer(module: str) -> int:
    return LAYERS.index(module.split(".", 1)[0])


def layer_violations(found: list[Import]) -> list[Violation]:
    """Imports that run up against the flow."""
    return [
        Violation(
            imp.path,
            imp.line,
            f"{imp.source} imports {imp.target}: {LAYERS[_layer(imp.source)]} is below "
            f"{LAYERS[_layer(imp.target)]} ({' < '.join(LAYERS)})",
            ("layers", imp.source, imp.target),
        )
        for imp in found
        if _layer(imp.target) > _layer(imp.source)
    ]


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative: the groups of modules that reach each other."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    groups: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                group: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1 or node in graph.get(node, ()):
                    groups.append(sorted(group))
    return groups


def cycle_violations(found: list[Import]) -> list[Violation]:
    """Every import that closes a loop: one per edge inside a group of mutually reachable modules."""
    graph: dict[str, set[str]] = {}
    for imp in found:
        if imp.source != imp.target:
            graph.setdefault(imp.source, set()).add(imp.target)
    violations: list[Violation] = []
    for group in _strongly_connected(graph):
        members = set(group)
        loop = " -> ".join([*group, group[0]]) if len(group) == 2 else ", ".join(group)
        for imp in found:
            if imp.source in members and imp.target in members and imp.source != imp.target:
                violations.append(
                    Violation(imp.path, imp.line, f"{imp.source} imports {imp.target}: import cycle ({loop})",
                              ("cycles", imp.source, imp.target))
                )
    return violations


def size_violations(known: dict[str, Path] | None = None) -> list[Violation]:
    """Modules over MAX_LINES lines."""
    known = modules() if known is None else known
    violations: list[Violation] = []
    for module, path in known.items():
        count = len(path.read_text(encoding="utf-8").splitlines())
        if count > MAX_LINES:
            violations.append(Violation(path, count, f"{count} lines, over {MAX_LINES}", ("size", module)))
    return violations


def _processes(cli: Path) -> Iterator[tuple[str, str, int]]:
    """(name, module, line) of every `sq processor NAME`, read from the PROCESSORS table of gateway/cli.py."""
    tree = ast.parse(cli.read_text(encoding="utf-8"), filename=str(cli))
    for node in ast.walk(tree):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == "PROCESSORS"
                and isinstance(node.value, ast.Dict)):
            for key, value in zip(node.value.keys, node.value.values, strict=True):
                if isinstance(key, ast.Constant) and isinstance(value, ast.Tuple):
                    module = value.elts[0]
                    if isinstance(module, ast.Constant):
                        yield str(key.value), str(module.value), key.lineno


def name_violations(root: Path = ROOT) -> list[Violation]:
    """`sq processor X` runs processors/X/ (a connector: processors/connector/X/): its module is that
    folder's runner.py. A hyphen in X is an underscore in the folder."""
    cli = root / "gateway" / "cli.py"
    violations: list[Violation] = []
    for name, module, line in _processes(cli):
        folder = name.replace("-", "_")
        if module not in (f"processors.{folder}.runner", f"processors.connector.{folder}.runner"):
            violations.append(Violation(cli, line, f"`sq processor {name}` runs {module}, not "
                                                   f"processors.{folder}.runner", ("names", name)))
    return violations


HOST_STEP = ("processors.fold", "step")
"""The one fold of decide and evolve, which the host runs every core through."""
HOST = "processors.host"


def _fold_calls(node: ast.AST) -> set[str]:
    """Which of decide and evolve a function (or module) body calls itself, nested functions aside: a call
    of ``decide``/``evolve``, ``x.decide``/``x.evolve`` or ``..._decide``/``..._evolve``."""
    found: set[str] = set()
    pending = list(ast.iter_child_nodes(node))
    while pending:
        child = pending.pop()
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
            continue
        if isinstance(child, ast.Call):
            func = child.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            for verb in ("decide", "evolve"):
                if name == verb or name.endswith(f"_{verb}"):
                    found.add(verb)
        pending.extend(ast.iter_child_nodes(child))
    return found


def _scopes(tree: ast.Module) -> Iterator[tuple[str, ast.AST, bool]]:
    """(qualified name, node, at module level) of the module itself and of every function in it."""
    yield "<module>", tree, True
    pending: list[tuple[str, ast.AST, bool]] = [("", tree, True)]
    while pending:
        prefix, parent, top = pending.pop()
        for child in ast.iter_child_nodes(parent):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = f"{prefix}{child.name}"
                yield name, child, top
                pending.append((f"{name}.", child, False))
            elif isinstance(child, ast.ClassDef):
                pending.append((f"{prefix}{child.name}.", child, False))
            else:
                pending.append((prefix, child, top))


def step_violations(known: dict[str, Path] | None = None, root: Path = ROOT) -> list[Violation]:
    """There is one ``step`` (issue 19 item 3): ``processors.fold.step``, which the host runs every core
    through, is the only function named ``step`` and the only one that calls decide and evolve together,
    in the layered packages and in the tests' helpers (replays, factories), where copies used to live.

    A test module (``test_*.py``) may call decide and evolve on their own: that is how a test checks
    one of them (evolve alone rebuilds the live state; decide twice gives the same events).
    """
    known = modules(root) if known is None else known
    files = dict(known)
    for path in sorted((root / "tests").rglob("*.py")):
        if not path.name.startswith("test_"):
            files[".".join(path.relative_to(root).with_suffix("").parts)] = path
    violations: list[Violation] = []
    found = False
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for name, node, top in _scopes(tree):
            line = getattr(node, "lineno", 1)
            if (module, name) == HOST_STEP and top:
                found = True
                continue
            if name.rpartition(".")[2] == "step":
                violations.append(Violation(path, line, f"{module}.{name} is a second step: fold with "
                                                        f"{'.'.join(HOST_STEP)}", ("step", module, name)))
            elif _fold_calls(node) == {"decide", "evolve"}:
                violations.append(Violation(path, line, f"{module}.{name} calls decide and evolve itself: fold "
                                                        f"with {'.'.join(HOST_STEP)}", ("step", module, name)))
    if not found:
        where = known.get(HOST_STEP[0], root / "processors")
        violations.append(Violation(where, 1, f"{HOST_STEP[0]} has no module-level {HOST_STEP[1]}()",
                                    ("step", *HOST_STEP)))
    if HOST in known and not any(isinstance(node, ast.ImportFrom) and node.module == HOST_STEP[0]
                                 and any(alias.name == HOST_STEP[1] for alias in node.names)
                                 for node in ast.walk(ast.parse(known[HOST].read_text(encoding="utf-8")))):
        violations.append(Violation(known[HOST], 1, f"{HOST} does not fold with {'.'.join(HOST_STEP)}",
                                    ("step", HOST)))
    return violations


def check() -> dict[str, list[Violation]]:
    """Every violation, by rule."""
    known = modules()
    found = sorted(set(imports(known)), key=lambda imp: (str(imp.path), imp.line, imp.target))
    return {
        "layers": layer_violations(found),
        "cycles": cycle_violations(found),
        "size": size_violations(known),
        "names": name_violations(),
        "step": step_violations(known),
    }


def verdict(results: dict[str, list[Violation]]) -> tuple[list[Violation], list[tuple[str, ...]]]:
    """The violations not in KNOWN, and the KNOWN entries that no longer occur."""
    seen = {violation.key for violations in results.values() for violation in violations}
    new = [violation for violations in results.values() for violation in violations if violation.key not in KNOWN]
    stale = [key for key in KNOWN if key not in seen]
    return new, stale


def main() -> int:
    """Print every violation as file:line; exit 1 on one not in KNOWN or on a stale KNOWN entry."""
    results = check()
    for rule, violations in results.items():
        for violation in violations:
            known = KNOWN.get(violation.key)
            print(f"{violation}  [{rule}]" + (f"  (known: {known})" if known else ""))
    new, stale = verdict(results)
    for key in stale:
        print(f"tests/structure.py: KNOWN entry {key} no longer occurs: delete it  [known]")
    summary = ", ".join(f"{rule} {len(v)}" for rule, v in results.items())
    total = sum(len(v) for v in results.values())
    print(f"structure: {total} violation(s) ({summary}); {total - len(new)} known, {len(new)} new, "
          f"{len(stale)} stale known")
    return 1 if new or stale else 0


if __name__ == "__main__":
    sys.exit(main())
