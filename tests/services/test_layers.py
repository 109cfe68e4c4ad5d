"""The services import one way: polls -> meetings -> availability -> calendars -> people,
with mail (invites), errors, audit, validation and Core reads underneath. An upward
import or an import cycle between service modules fails here, so the layering cannot
erode quietly."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SERVICES = Path(__file__).resolve().parents[2] / "server" / "services"

# Higher numbers may import lower ones, never the reverse. Equal layers are one package.
LAYERS: dict[str, int] = {
    "errors": 0,
    "validation": 1,
    "core_reads": 1,
    "audit": 1,
    "invites": 2,
    "people": 3,
    "calendars": 4,
    "integrations": 5,
    "availability": 6,
    "meetings": 7,
    "polls": 8,
    # Whole-installation tools that use several domains.
    "key_rotation": 9,
    "demo": 9,
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(SERVICES.parent.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _all_imports(path: Path) -> set[str]:
    """Every module this file imports, at any depth of the file (lazy imports count)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


def _imports(path: Path) -> set[str]:
    """The server.services modules this file imports."""
    return {name for name in _all_imports(path) if name.startswith("server.services.")}


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in SERVICES.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        graph[name] = {dep for dep in _imports(path) if dep in modules and dep != name}
    return graph


def _area(module: str) -> str:
    return module.split(".")[2]


def test_every_service_module_has_a_layer() -> None:
    areas = {_area(m) for m in _graph() if m.count(".") >= 2}
    assert areas <= set(LAYERS), f"give these a layer: {sorted(areas - set(LAYERS))}"


def test_no_upward_imports() -> None:
    upward = [
        f"{module} imports {dep}"
        for module, deps in _graph().items()
        if module.count(".") >= 2
        for dep in deps
        if LAYERS[_area(dep)] > LAYERS[_area(module)]
    ]
    assert not upward, "imports must point down:\n" + "\n".join(sorted(upward))


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            # A package importing its own submodules is how __init__ re-exports; not a cycle.
            if dep.startswith(node + "."):
                continue
            if state.get(dep) == 1:
                return [*stack[stack.index(dep) :], dep]
            if dep not in state and (found := visit(dep)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycles() -> None:
    cycle = _cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": {"a"}}, ["a", "b", "a"]),
        ({"a": {"b"}, "b": set()}, None),
    ],
)
def test_cycle_finder_finds_cycles(graph: dict[str, set[str]], expected: list[str] | None) -> None:
    assert _cycle(graph) == expected


def test_services_speak_only_the_provider_protocols() -> None:
    """Services choose behaviour by capability (``PushProvider``, ``RemovalRechecking``...),
    never by a concrete provider class, so a new provider needs no service change."""
    concrete = ("server.providers.google", "server.providers.microsoft", "server.providers.caldav")
    offenders = [
        f"{_module_name(path)} imports {name}"
        for path in SERVICES.rglob("*.py")
        for name in _all_imports(path)
        if name.startswith(concrete)
    ]
    assert not offenders, "\n".join(offenders)


FACES = [SERVICES.parent / "pages", SERVICES.parent / "resolvers"]
DATABASE_CALLS = ("db.get(", "session.get(", "select(", ".exec(", ".execute(")


@pytest.mark.parametrize("face", FACES, ids=lambda p: p.name)
def test_pages_and_resolvers_reach_the_database_only_through_services(face: Path) -> None:
    offenders = []
    for path in face.rglob("*.py"):
        text = path.read_text()
        offenders += [f"{path.name}: {call}" for call in DATABASE_CALLS if call in text]
        offenders += [
            f"{path.name} imports {name}"
            for name in _all_imports(path)
            if name.split(".")[0] in {"sqlmodel", "sqlalchemy"}
        ]
    assert not offenders, "\n".join(offenders)


def test_services_know_no_web_framework() -> None:
    offenders = [
        f"{_module_name(path)} imports {name}"
        for path in SERVICES.rglob("*.py")
        for name in _all_imports(path)
        if name.split(".")[0] in {"starlette", "strawberry"}
        or name.startswith(("server.web", "server.pages", "server.resolvers", "server.schema"))
    ]
    assert not offenders, "\n".join(offenders)
