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
    "evaluation": {"checkpoint", "data", "errors", "models", "runtime", "tokenizer"},
    "train": {"checkpoint", "config", "data", "errors", "evaluation", "models", "runtime", "tokenizer"},
    "cli": {"seqtext", "config", "errors", "train", "data"},
    "__init__": set(),
    "__main__": {"cli"},
}
OWNERS = {
    "typer": {"cli"},
    "rich": {"cli"},
    "tokenizers": {"tokenizer", "checkpoint", "data"},
    "datasets": {"data"},
    "safetensors": {"checkpoint"},
}


def imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module == "seqtext":  # from seqtext import module
            names |= {f"seqtext.{a.name}" if (PACKAGE / f"{a.name}.py").exists() else "seqtext" for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_every_module_is_in_the_map():
    assert {p.stem for p in PACKAGE.glob("*.py")} == set(ALLOWED)


def test_imports_flow_one_way():
    for path in PACKAGE.glob("*.py"):
        used = {n.split(".")[1] for n in imports(path) if n.startswith("seqtext.")}
        used |= {"seqtext"} if "seqtext" in imports(path) else set()
        modules = {p.stem for p in PACKAGE.glob("*.py")}
        used = {u for u in used if u in modules or u == "seqtext"}
        assert used <= ALLOWED[path.stem], f"{path.name} imports {sorted(used - ALLOWED[path.stem])}"


def test_external_libraries_have_one_owner():
    for path in PACKAGE.glob("*.py"):
        top = {n.split(".")[0] for n in imports(path)}
        for library, owners in OWNERS.items():
            assert library not in top or path.stem in owners, f"{path.name} imports {library}"
