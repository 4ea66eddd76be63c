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
# Clock reads: the core is handed the time (Services.clock, a ``now`` argument), so that decisions can be tested at
# any instant. CLOCK_READS maps the module or class read from to the names that read the wall or monotonic clock.
CLOCK_READS = {
    "datetime": frozenset({"now", "utcnow", "today"}),
    "date": frozenset({"today"}),
    "time": frozenset({"time", "time_ns", "monotonic", "monotonic_ns", "perf_counter", "perf_counter_ns"}),
}
# (module, function) allowed to read the clock, and why. records.utcnow is the default of StatusRecord.updated_at,
# AuditEvent.at and Services.clock, and OnboardRequest's issuedAt check reads it while validating: making those
# timestamps required touches every construction of a record (tests, adapters, triggers) - a change of its own.
CLOCK_ALLOWED = frozenset({("licensing.core.records", "utcnow")})
DYNAMIC_IMPORTS = frozenset({"import_module", "__import__"})  # importlib.import_module("licensing.x"), __import__


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
        elif isinstance(node, ast.Call) and _called(node) in DYNAMIC_IMPORTS and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                yield node.lineno, first.value, ()


def _called(node: ast.Call) -> str:
    """The name a call reaches: open() -> open, importlib.import_module() -> import_module."""
    func = node.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def _clock_reads(module: str, tree: ast.AST) -> Iterator[Violation]:
    """Every datetime.now() / time.monotonic() ... outside CLOCK_ALLOWED, and every clock imported by name."""
    allowed = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and (module, n.name) in CLOCK_ALLOWED]
    exempt = {id(inner) for node in allowed for inner in ast.walk(node)}
    for node in ast.walk(tree):
        if id(node) in exempt:
            continue
        if isinstance(node, ast.ImportFrom) and node.module in CLOCK_READS:
            for alias in node.names:
                if alias.name in CLOCK_READS[node.module]:
                    yield Violation(module, node.lineno, f"the pure core imports the clock {node.module}.{alias.name}")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            name = owner.id if isinstance(owner, ast.Name) else owner.attr if isinstance(owner, ast.Attribute) else ""
            if node.func.attr in CLOCK_READS.get(name, ()):
                yield Violation(module, node.lineno, f"the pure core reads the clock ({name}.{node.func.attr}())")


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
            found.extend(_clock_reads(module, tree))
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


def test_a_core_module_importing_an_adapter_by_name_is_caught(tmp_path: Path) -> None:
    """importlib.import_module('licensing.adapters...') or __import__ from the core is an upward import all the same."""
    root = _tree(
        tmp_path,
        {
            "core/__init__.py": "",
            "core/planning.py": (
                "import importlib\ngw = importlib.import_module('licensing.adapters.graph.gateway')\n"
                "from importlib import import_module\nst = import_module('licensing.services.onboard')\n"
                "tables = __import__('azure.data.tables')\nok = import_module('licensing.core.model')\n"
            ),
        },
    )
    assert [str(v) for v in violations(root)] == [
        "licensing.core.planning:2: core imports licensing.adapters.graph.gateway (adapters)",
        "licensing.core.planning:4: core imports licensing.services.onboard (services)",
        "licensing.core.planning:5: the pure core imports azure.data.tables",
        "licensing.core.planning:5: the pure core calls __import__()",
    ]


def test_a_core_module_reading_the_clock_is_caught(tmp_path: Path) -> None:
    """The core may not read a clock it is not handed: datetime.now/utcnow/today, date.today, time.time/monotonic."""
    root = _tree(
        tmp_path,
        {
            "core/__init__.py": "",
            "core/records.py": (
                "import datetime as dt, time\nfrom datetime import date, datetime\nfrom time import monotonic\n"
                "a = datetime.now()\nb = dt.datetime.utcnow()\nc = date.today()\nd = time.monotonic()\n"
                "e = datetime.fromisoformat('2026-01-01')\n"
                "def utcnow():\n    return datetime.now()\n"
            ),
        },
    )
    assert [str(v) for v in violations(root)] == [
        "licensing.core.records:3: the pure core imports the clock time.monotonic",
        "licensing.core.records:4: the pure core reads the clock (datetime.now())",
        "licensing.core.records:5: the pure core reads the clock (datetime.utcnow())",
        "licensing.core.records:6: the pure core reads the clock (date.today())",
        "licensing.core.records:7: the pure core reads the clock (time.monotonic())",
    ]


def test_the_clock_allowance_is_one_function_and_outside_the_core_the_clock_is_free(tmp_path: Path) -> None:
    """records.utcnow may read the clock; the same call elsewhere in the core may not; adapters read it freely."""
    clock = "from datetime import datetime\ndef utcnow():\n    return datetime.now()\n"
    root = _tree(
        tmp_path,
        {
            "core/__init__.py": "",
            "core/records.py": clock,
            "core/policy.py": clock,
            "adapters/__init__.py": "",
            "adapters/clock.py": clock,
        },
    )
    assert [str(v) for v in violations(root)] == [
        "licensing.core.policy:3: the pure core reads the clock (datetime.now())"
    ]
