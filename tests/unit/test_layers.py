"""The folder tree is the architecture: every import points down the layers, and the core does no I/O."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "licensing"

# Layer -> the licensing layers it may import (its own always allowed). Anything else under licensing is refused.
ALLOWED: dict[str, frozenset[str]] = {
    "core": frozenset(),
    "settings": frozenset({"core"}),
    "adapters": frozenset({"core", "settings"}),
    "services": frozenset({"core", "settings", "adapters"}),
    "composition": frozenset({"core", "settings", "adapters", "services"}),
    "functions": frozenset({"core", "settings", "adapters", "services", "composition"}),
    "cli": frozenset({"core", "settings", "adapters", "services", "composition"}),
    "dev": frozenset({"core", "settings", "adapters", "services", "composition", "functions"}),
    "__main__": frozenset({"cli"}),
}
# What the pure core may not reach for: SDKs, the network, the file system, processes, clocks it cannot be handed.
SDKS = ("azure", "msgraph", "msgraph_core", "kiota_abstractions", "kiota_http", "kiota_authentication_azure")
NETWORK = ("httpx", "aiohttp", "requests", "urllib", "http", "socket", "ssl", "asyncio")
SYSTEM = ("subprocess", "os", "pathlib", "shutil", "tempfile", "io", "sqlite3")
PRESENTATION = ("opentelemetry", "jinja2", "rich")
CORE_FORBIDDEN_MODULES = frozenset(SDKS + NETWORK + SYSTEM + PRESENTATION)
CORE_ALLOWED_PATHLIB = frozenset({"PurePath"})  # pure path arithmetic, no file system access
CORE_FORBIDDEN_CALLS = frozenset({"open", "input", "print", "exec", "eval", "__import__"})


@dataclass(frozen=True, slots=True)
class Violation:
    """One import or call that breaks the layering, with where it is."""

    module: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.module}:{self.line}: {self.what}"


def layer_of(module: str) -> str:
    """The layer of a licensing module: licensing.core.policy -> core, licensing.settings -> settings."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "licensing"


def _modules(root: Path) -> Iterator[tuple[str, Path]]:
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        yield ".".join(parts), path


def _imports(module: str, tree: ast.AST, *, is_package: bool) -> Iterator[tuple[int, str, tuple[str, ...]]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, ()
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names = tuple(alias.name for alias in node.names)
            if base == "licensing":  # `from licensing import services` imports the subpackage
                for name in names:
                    yield node.lineno, f"licensing.{name}", ()
            else:
                yield node.lineno, base, names


def violations(root: Path = PACKAGE) -> list[Violation]:
    """Every import against the layer table, and every I/O reach from the core, in the package at ``root``."""
    found: list[Violation] = []
    for module, path in _modules(root):
        layer = layer_of(module)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, target, names in _imports(module, tree, is_package=path.name == "__init__.py"):
            top = target.split(".")[0]
            if top == root.name:
                other = layer_of(target)
                allowed = ALLOWED.get(layer)
                if other not in {layer, "licensing"} and (allowed is None or other not in allowed):
                    found.append(Violation(module, line, f"{layer} imports {target} ({other})"))
            elif layer == "core" and top in CORE_FORBIDDEN_MODULES:
                if top == "pathlib" and names and set(names) <= CORE_ALLOWED_PATHLIB:
                    continue
                found.append(Violation(module, line, f"the pure core imports {target}"))
        if layer == "core":
            found.extend(
                Violation(module, node.lineno, f"the pure core calls {node.func.id}()")
                for node in ast.walk(tree)
                if isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in CORE_FORBIDDEN_CALLS
            )
    return found


def test_every_import_points_down_the_layers() -> None:
    """No module imports a layer above it; the core imports no adapter, SDK, network or file system module."""
    assert [str(v) for v in violations()] == []


def test_every_module_belongs_to_a_known_layer() -> None:
    """A new top-level module must be given a place in the layer table, not slip past the check."""
    layers = {layer_of(module) for module, _ in _modules(PACKAGE)}
    assert layers - {"licensing"} <= set(ALLOWED)


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "licensing"
    for name, text in {"__init__.py": "", **files}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def test_a_core_module_importing_an_adapter_is_caught(tmp_path: Path) -> None:
    """The check itself works: a core module importing the Graph adapter (even inside a function) is reported."""
    root = _tree(
        tmp_path,
        {
            "core/__init__.py": "",
            "core/planning.py": "def plan():\n    from licensing.adapters.graph import gateway\n    return gateway\n",
            "adapters/__init__.py": "",
            "adapters/graph/__init__.py": "",
            "adapters/graph/gateway.py": "",
        },
    )
    assert [str(v) for v in violations(root)] == [
        "licensing.core.planning:2: core imports licensing.adapters.graph (adapters)"
    ]


def test_a_core_module_reaching_for_sdks_or_files_is_caught(tmp_path: Path) -> None:
    """The core may not import an Azure SDK, the network or the file system, nor call open()."""
    root = _tree(
        tmp_path,
        {
            "core/__init__.py": "",
            "core/model.py": (
                "import httpx\nfrom azure.data.tables import TableClient\nfrom pathlib import Path, PurePath\n"
                "from pathlib import PurePath as P\ntext = open('x').read()\n"
            ),
        },
    )
    assert [str(v) for v in violations(root)] == [
        "licensing.core.model:1: the pure core imports httpx",
        "licensing.core.model:2: the pure core imports azure.data.tables",
        "licensing.core.model:3: the pure core imports pathlib",
        "licensing.core.model:5: the pure core calls open()",
    ]


def test_upward_and_relative_imports_are_caught(tmp_path: Path) -> None:
    """An adapter importing a use case, or a use case importing a trigger through a relative import, is reported."""
    root = _tree(
        tmp_path,
        {
            "adapters/__init__.py": "",
            "adapters/storage.py": "from licensing.services import onboard\n",
            "services/__init__.py": "",
            "services/onboard.py": "from ..functions import queues\nfrom . import verify\n",
            "services/verify.py": "",
            "functions/__init__.py": "",
            "functions/queues.py": "",
        },
    )
    assert [str(v) for v in violations(root)] == [
        "licensing.adapters.storage:1: adapters imports licensing.services (services)",
        "licensing.services.onboard:1: services imports licensing.functions (functions)",
    ]
