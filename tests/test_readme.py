"""The README starts with the two set-up commands, and the layout in docs/development.md is the package's."""

import re

from helpers import ROOT

ENTRY = re.compile(r"^(?P<indent>(?:│   |    )*)[├└]── (?P<name>[\w.]+/?)")
SETUP_COMMANDS = ["sh scripts/demo.sh", "sh scripts/test.sh"]


def layout_tree() -> set[str]:
    """The paths named by the `seqtext/` file tree of docs/development.md."""
    text = (ROOT / "docs" / "development.md").read_text(encoding="utf-8")
    assert "```text\nseqtext/\n" in text, "docs/development.md has no ```text block starting with seqtext/"
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


def test_layout_tree_lists_every_module():
    listed = layout_tree()
    package = ROOT / "seqtext"
    modules = {
        str(p.relative_to(ROOT))
        for p in package.rglob("*.py")
        if p.name != "__init__.py" or p.parent == package
        if "cli" not in p.relative_to(package).parts  # the tree names cli/ as one entry
    }
    unlisted = sorted(modules - listed)
    assert not unlisted, f"modules missing from the file tree of docs/development.md: {', '.join(unlisted)}"
    missing = sorted(p for p in listed if p.startswith("seqtext") and not (ROOT / p).exists())
    assert not missing, f"the file tree of docs/development.md names files that do not exist: {', '.join(missing)}"


def test_readme_starts_with_the_title_then_the_two_setup_commands():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    lines = text.splitlines()
    assert lines[0].startswith("# "), "the README's first line is its title"
    first_block = text.index("```")
    intro = text[:first_block]
    assert intro.count("\n\n") <= 2, "only the title and one paragraph come before the set-up commands"
    block = text[first_block:].split("```")[1]
    commands = [line.split("#")[0].strip() for line in block.splitlines()[1:] if line.strip()]
    assert commands == SETUP_COMMANDS
    for command in commands:
        assert (ROOT / command.split()[-1]).is_file(), f"{command}: no such script"
