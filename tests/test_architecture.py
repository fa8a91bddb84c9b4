"""The module map of the style guide: imports flow one way, each external library has one owner."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "seqtext"

# module → seqtext modules it may import
ALLOWED = {
    "errors": set(),
    "config": {"errors"},
    "runtime": {"errors"},
    "tokenizer": set(),
    "models": {"config"},
    "data": {"errors", "tokenizer"},
    "checkpoint": {"seqtext", "config", "errors", "models"},
    "generation": {"checkpoint", "errors", "tokenizer"},
    "completion": {"checkpoint", "errors", "models", "tokenizer"},
    "evaluation": {"checkpoint", "classification", "completion", "data", "errors", "models", "runtime", "tokenizer"},
    "labelled": {"config", "data", "errors", "tokenizer"},
    "classification": {"checkpoint", "config", "errors", "labelled", "runtime", "tokenizer"},
    "classifier_training": {
        "checkpoint",
        "classification",
        "config",
        "errors",
        "labelled",
        "models",
        "runtime",
        "tokenizer",
        "train",
    },
    "train": {"checkpoint", "config", "data", "errors", "evaluation", "models", "runtime", "tokenizer"},
    "cli": {"cli", "seqtext", "completion", "config", "data", "errors", "labelled", "train"},
    "__init__": set(),
    "__main__": {"cli"},
}
OWNERS = {
    "typer": {"cli"},
    "rich": {"cli"},
    "tokenizers": {"tokenizer", "checkpoint", "data"},
    "datasets": {"data"},
    "safetensors": {"checkpoint"},
    "prompt_toolkit": {"cli"},
    "matplotlib": {"cli"},  # `evaluate --plot` (optional dependency)  # the interactive keyboard of `seqtext complete`
}


def module_of(path: Path) -> str:
    """Top-level module name: 'train' for train.py, 'cli' for anything in the cli package."""
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else path.stem


MODULES = {module_of(p): p for p in PACKAGE.rglob("*.py")}


def imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module == "seqtext":  # from seqtext import module
            names |= {f"seqtext.{a.name}" if a.name in MODULES else "seqtext" for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_every_module_is_in_the_map():
    assert set(MODULES) == set(ALLOWED)


def test_imports_flow_one_way():
    for path in PACKAGE.rglob("*.py"):
        used = {n.split(".")[1] for n in imports(path) if n.startswith("seqtext.")}
        used |= {"seqtext"} & imports(path)
        assert used <= ALLOWED[module_of(path)], f"{path.name} imports {sorted(used - ALLOWED[module_of(path)])}"


def test_nothing_imports_the_cli():
    for path in PACKAGE.rglob("*.py"):
        if module_of(path) not in ("cli", "__main__"):
            assert not any(n.startswith("seqtext.cli") for n in imports(path)), path.name


def test_external_libraries_have_one_owner():
    for path in PACKAGE.rglob("*.py"):
        top = {n.split(".")[0] for n in imports(path)}
        for library, owners in OWNERS.items():
            assert library not in top or module_of(path) in owners, f"{path.name} imports {library}"
