"""The package layout, enforced as folder rules. Imports flow one way through six layers:

    foundations ← runs ← training ← areas ← api ← edge

- foundations: the modules at the package root (errors, schema, files, limits, config, presets, textfiles, jsonfiles,
  runtime, tokenizer, data, models, classifiers): what everything builds on;
- runs/: the run directory, saved and read back checked: the one reader of a run directory;
- training/: the loop, the session that holds a run directory, the processes of a run;
- areas: lm/, keyboard/, sentiment/, the product areas; two areas meet only through the layers below;
- api: api.py, the public entry points that span the areas, plots.py, every figure, and export/, a run of
  either area as portable files;
- edge: cli/, serve/ and __main__.py; nothing but __main__ imports the CLI, nothing but the CLI the server.

A module imports its own layer and the layers below it, never one above. Each external library has
one owner, and no module passes MAX_LINES.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "seqtext"

LAYERS = ("foundations", "runs", "training", "areas", "api", "edge")  # each imports only itself and those before it
FOLDERS = {
    "runs": "runs",
    "training": "training",
    "lm": "areas",
    "keyboard": "areas",
    "sentiment": "areas",
    "export": "api",  # a run of either area as portable files: like api.py it spans the areas, below the edge
    "cli": "edge",
    "serve": "edge",
}
ABOVE_THE_FOUNDATIONS = {"api": "api", "plots": "api", "__main__": "edge"}  # root modules that are not foundations
# Foundations that import fast: plain Python (configs are read before anything heavy, `--help` needs no torch)
PLAIN = {"errors", "schema", "files", "limits", "config", "presets", "textfiles", "jsonfiles"}
HEAVY = {"torch", "tokenizers", "datasets", "safetensors"}
# The package itself (`from seqtext import __version__`, its lazy public names): runs write the version into
# config.json; the edge uses the public API.
IMPORT_THE_PACKAGE = {"runs", "edge"}
OWNERS = {
    "typer": {"cli"},
    "rich": {"cli"},
    "prompt_toolkit": {"cli"},  # the interactive keyboard of `seqtext complete`
    "matplotlib": {"plots"},  # every figure; optional, imported only when one is drawn
    "tokenizers": {"tokenizer", "data", "runs"},  # runs read and write tokenizer.json
    "datasets": {"data"},
    "safetensors": {"runs"},  # every tensor file of a run, read and written in runs/
    "filelock": {"files"},  # the run lock
    "platformdirs": {"keyboard"},  # the personal model's default place: the user's data directory
    "fastapi": {"serve"},
    "starlette": {"serve"},
    "pydantic": {"serve"},
    "uvicorn": {"serve"},
    "onnx": {"export"},  # the export's graphs (optional: the export extra)
    "onnxruntime": set(),  # only the tests and the reader of an export run it, never seqtext itself
}
MAX_LINES = 330  # the project's rule is "about 300 lines": room for a docstring, not for a second concern


def unit_of(path: Path) -> str:
    """What a file belongs to: its folder ('runs' for runs/reading.py), or its name at the root ('config')."""
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else path.stem


def layer_of(unit: str) -> str:
    if unit in FOLDERS:
        return FOLDERS[unit]
    return ABOVE_THE_FOUNDATIONS.get(unit, "foundations")


def imported_units(path: Path) -> tuple[set[str], set[str]]:
    """The seqtext units a file imports ('__init__' for the package itself), and the external top-level names."""
    units, external = set(), set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module == "seqtext":  # from seqtext import config
            names = [
                f"seqtext.{a.name}" if (PACKAGE / f"{a.name}.py").exists() or (PACKAGE / a.name).is_dir() else "seqtext"
                for a in node.names
            ]
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
    layer, problems = layer_of(unit), []
    for other in sorted(imports - {unit}):
        if other == "__init__":
            if layer not in IMPORT_THE_PACKAGE:
                problems.append(f"{unit} imports the package itself")
        elif LAYERS.index(layer_of(other)) > LAYERS.index(layer):
            problems.append(f"{unit} ({layer}) imports {other} ({layer_of(other)}), a layer above it")
        elif layer == layer_of(other) == "areas":
            problems.append(f"{unit} imports another product area, {other}")
        elif other == "cli" and unit != "__main__":
            problems.append(f"{unit} imports the CLI")
        elif other == "serve" and unit != "cli":
            problems.append(f"{unit} imports the server")
        elif unit in PLAIN and other not in PLAIN:
            problems.append(f"{unit} imports {other}: a plain foundation imports only plain ones")
        elif unit == "models" and other in ("tokenizer", "data"):
            problems.append(f"models imports {other}: the model knows ids, not text")
    return problems


FILES = sorted(PACKAGE.rglob("*.py"))
IDS = {"ids": lambda p: str(p.relative_to(PACKAGE))}


def test_every_folder_is_a_layer():
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders == set(FOLDERS), "a new folder needs its layer in FOLDERS"
    for folder in folders:
        assert (PACKAGE / folder / "__init__.py").is_file(), f"{folder}/ is not a package"


@pytest.mark.parametrize("path", FILES, **IDS)
def test_imports_flow_one_way(path):
    units, _ = imported_units(path)
    assert not violations(unit_of(path), units)


@pytest.mark.parametrize("path", FILES, **IDS)
def test_external_libraries_have_one_owner(path):
    unit = unit_of(path)
    _, external = imported_units(path)
    for library, owners in OWNERS.items():
        assert library not in external or unit in owners, f"{path.name} imports {library}"
    assert unit not in PLAIN or not external & HEAVY, (
        f"{path.name} is a plain foundation but imports {external & HEAVY}"
    )


@pytest.mark.parametrize("path", FILES, **IDS)
def test_no_module_passes_the_size_limit(path):
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path.name} has {lines} lines; split it along a seam (at most {MAX_LINES})"


@pytest.mark.parametrize(
    ("unit", "imports"),
    [
        ("config", {"runs"}),  # a foundation imports a layer above
        ("runs", {"training"}),  # the run directory imports the loop
        ("training", {"lm"}),  # the loop imports an area
        ("keyboard", {"cli"}),  # an area imports the CLI
        ("sentiment", {"lm"}),  # two areas import each other
        ("lm", {"api"}),  # an area imports the public entry points above it
        ("plots", {"serve"}),
        ("api", {"cli"}),
        ("keyboard", {"serve"}),  # an area imports the server
        ("serve", {"cli"}),  # the server imports the CLI
        ("keyboard", {"__init__"}),  # an area reaches the public API through the package
        ("config", {"models"}),  # a plain foundation imports a heavy one
        ("models", {"tokenizer"}),  # the model learns about text
    ],
)
def test_the_rules_catch_what_they_forbid(unit, imports):
    assert violations(unit, imports), f"{unit} importing {imports} should be refused"


def test_the_rules_allow_the_intended_direction():
    assert not violations("runs", {"__init__", "config", "models", "schema", "tokenizer", "runs"})
    assert not violations("training", {"runs", "data", "models", "training"})
    assert not violations("keyboard", {"runs", "training", "models", "keyboard"})
    assert not violations("api", {"lm", "keyboard", "sentiment", "runs", "training"})
    assert not violations("plots", {"runs", "errors", "files"})
    assert not violations("cli", {"__init__", "lm", "api", "plots", "training", "cli", "serve"})
    assert not violations("serve", {"__init__", "runs", "keyboard", "lm", "sentiment", "serve"})
    assert not violations("__main__", {"cli"})
    assert not violations("data", {"errors", "files", "textfiles", "tokenizer"})
