"""The package layout, enforced: the shared core at the top level, one subpackage per product area,
the command line at the edge. Imports flow one way (core ← areas ← facade ← cli), two areas meet
only through the core, and each external library has one owner.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "seqtext"

# The core, and within it the order of imports: each core module may import only these.
CORE = {
    "errors": set(),
    "files": {"errors"},  # paths checked before work, atomic writes, the run lock
    "schema": {"errors"},  # typed dataclass fields, checked
    "config": {"errors", "files", "schema"},
    "presets": {"config", "errors"},  # --preset's recipes
    "runtime": {"errors"},
    "tokenizer": set(),
    "textfiles": {"errors", "files"},  # UTF-8 text or a clear refusal
    "models": {"config"},
    "data": {"errors", "files", "textfiles", "tokenizer"},
    # the run directory: saved, read back as untrusted input, resume state, inspected
    "runs": {"__init__", "config", "errors", "files", "models", "schema", "tokenizer"},
    # the loop, its stops and gradient log, the run's lock, the processes of a run under torchrun
    "training": {"config", "data", "errors", "files", "models", "runs", "tokenizer"},
    "plots": {"runs", "errors", "files"},  # every figure; matplotlib is imported only when one is drawn
}
AREAS = {"lm", "keyboard", "sentiment"}  # product areas: each imports the core and itself, never another area
FACADE = {"api"}  # public functions that span the areas (evaluate(), train_lm() with its n-gram)
EDGE = {
    "cli",
    "serve",
    "__main__",
}  # may import anything; nothing but __main__ imports the CLI, nothing but the CLI serve
OWNERS = {
    "typer": {"cli"},
    "rich": {"cli"},
    "prompt_toolkit": {"cli"},  # the interactive keyboard of `seqtext complete`
    "matplotlib": {"plots"},  # every figure; optional, imported only when one is drawn
    "tokenizers": {"tokenizer", "data", "runs"},
    "datasets": {"data"},
    "safetensors": {"runs"},
    "filelock": {"files"},  # the run lock
    "platformdirs": {"keyboard"},  # the personal model's default place: the user's data directory
    "fastapi": {"serve"},
    "starlette": {"serve"},
    "pydantic": {"serve"},
    "uvicorn": {"serve"},
}


def unit_of(path: Path) -> str:
    """What a file belongs to: 'train' for train.py, 'lm' for anything in the lm subpackage."""
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else path.stem


def imported_units(path: Path) -> tuple[set[str], set[str]]:
    """The seqtext units a file imports ('__init__' for the package itself), and the external top-level names."""
    units, external = set(), set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module == "seqtext":  # from seqtext import checkpoint
            names = [f"seqtext.{a.name}" if (PACKAGE / f"{a.name}.py").exists() else "seqtext" for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "seqtext":
                units.add(parts[1] if len(parts) > 1 else "__init__")
            else:
                external.add(parts[0])
    return units, external


def violations(unit: str, imports: set[str]) -> list[str]:
    """Why `unit` may not import `imports` (an empty list when it may)."""
    imports = imports - {unit}
    if unit in CORE:
        allowed = CORE[unit]
    elif unit in AREAS:
        allowed = set(CORE)
    elif unit in FACADE:
        allowed = set(CORE) | AREAS
    else:  # the edge
        allowed = set(CORE) | AREAS | FACADE | EDGE | {"__init__"}
    problems = [f"{unit} imports {other}" for other in sorted(imports - allowed)]
    if "cli" in imports and unit != "__main__":
        problems.append(f"{unit} imports the CLI")
    if "serve" in imports and unit != "cli":
        problems.append(f"{unit} imports the server")
    return problems


FILES = sorted(PACKAGE.rglob("*.py"))


def test_every_file_belongs_to_a_known_unit():
    known = set(CORE) | AREAS | FACADE | EDGE | {"__init__"}
    assert {unit_of(path) for path in FILES} <= known, "add a new module to the map above"
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders == AREAS | {"cli", "serve", "runs", "training"}


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_flow_one_way(path):
    units, _ = imported_units(path)
    assert not violations(unit_of(path), units)


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_external_libraries_have_one_owner(path):
    _, external = imported_units(path)
    for library, owners in OWNERS.items():
        assert library not in external or unit_of(path) in owners, f"{path.name} imports {library}"


@pytest.mark.parametrize(
    ("unit", "imports"),
    [
        ("keyboard", {"cli"}),  # an area imports the CLI
        ("sentiment", {"lm"}),  # two areas import each other
        ("lm", {"api"}),  # an area imports the facade above it
        ("training", {"lm"}),  # a core module imports an area
        ("models", {"tokenizer"}),  # the core's own order
        ("api", {"cli"}),
        ("keyboard", {"serve"}),  # an area imports the server
        ("serve", {"cli"}),  # the server imports the CLI
    ],
)
def test_the_rules_catch_what_they_forbid(unit, imports):
    assert violations(unit, imports), f"{unit} importing {imports} should be refused"


def test_the_rules_allow_the_intended_direction():
    assert not violations("keyboard", {"runs", "models", "keyboard"})
    assert not violations("api", {"lm", "keyboard", "sentiment", "runs", "training"})
    assert not violations("cli", {"__init__", "lm", "api", "cli", "serve"})
    assert not violations("serve", {"__init__", "runs", "keyboard", "lm", "sentiment", "serve"})
