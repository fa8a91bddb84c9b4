"""The README's file tree is the package's layout: every module is in it and everything in it exists."""

import re

from conftest import ROOT

ENTRY = re.compile(r"^(?P<indent>(?:│   |    )*)[├└]── (?P<name>[\w.]+/?)")


def readme_tree() -> set[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text[text.index("```text\nseqtext/\n") :].split("```")[1]
    paths, parents = set(), ["seqtext"]
    for line in block.splitlines()[2:]:
        match = ENTRY.match(line)
        if not match:
            continue
        depth = len(match["indent"]) // 4
        parents = parents[: depth + 1]
        name = match["name"]
        paths.add("/".join([*parents, name.rstrip("/")]))
        if name.endswith("/"):
            parents.append(name.rstrip("/"))
    return paths


def test_readme_tree_lists_every_module():
    listed = readme_tree()
    package = ROOT / "seqtext"
    modules = {
        str(p.relative_to(ROOT))
        for p in package.rglob("*.py")
        if p.name != "__init__.py" or p.parent == package
        if "cli" not in p.relative_to(package).parts  # the tree names cli/ as one entry
    }
    assert modules - listed == set(), "modules missing from the README's file tree"
    missing = {p for p in listed if p.startswith("seqtext") and not (ROOT / p).exists()}
    assert missing == set(), "the README's file tree names files that do not exist"
