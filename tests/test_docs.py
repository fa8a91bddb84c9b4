"""Every relative link and anchor in README.md and docs/*.md resolves, as GitHub renders the files.

No network: links with a scheme (https:, mailto:) are not followed.
"""

import re
import unicodedata
from pathlib import Path

import pytest
from helpers import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SPEC = ROOT.parent / "shared" / "specs" / "completion-metrics.md"

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
ATX_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(?P<text>.*?)(?:[ \t]+#+)?[ \t]*$")
SETEXT_UNDERLINE = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
INLINE_LINK = re.compile(
    r"!?\[(?P<text>(?:[^\[\]]|\[[^\]]*\])*)\]"  # [text], which may hold an image's [alt]
    r"\(\s*(?P<target><[^>]*>|[^\s)]+)(?:\s+\"[^\"]*\")?\s*\)"  # (target "optional title")
)
REFERENCE_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(?P<target>\S+)")
HTML_LINK = re.compile(r"""<(?:a|img)\b[^>]*?\b(?:href|src)=["'](?P<target>[^"']+)["']""")
HTML_ANCHOR = re.compile(r"""<a\b[^>]*?\b(?:id|name)=["'](?P<name>[^"']+)["']""")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks (code blocks hold commands, not links)."""
    lines, fence = [], None
    for line in text.splitlines():
        match = FENCE.match(line)
        if fence is None and match:
            fence = match[1][0] * len(match[1])
        elif fence is not None and line.strip().startswith(fence):
            fence = None
        elif fence is None:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text lower-cased, punctuation removed, spaces made hyphens."""
    text = CODE_SPAN.sub(lambda m: m[2].strip(), heading)
    text = INLINE_LINK.sub(lambda m: m["text"], text)
    text = re.sub(r"<[^>]+>", "", text).replace("*", "")
    kept = (c for c in text.strip().lower() if c in " -_" or unicodedata.category(c)[0] in "LMN")
    return "".join(kept).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every anchor a page offers: its headings' slugs (repeats numbered, as GitHub does) and HTML ids."""
    found, seen = set(), {}
    lines = prose_lines(text)
    for i, line in enumerate(lines):
        heading = ATX_HEADING.match(line)
        if heading:
            title = heading["text"]
        elif i and SETEXT_UNDERLINE.match(line) and lines[i - 1].strip() and "|" not in lines[i - 1]:
            title = lines[i - 1].strip()
        else:
            continue
        base = slug(title)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    for line in lines:
        found.update(m["name"] for m in HTML_ANCHOR.finditer(line))
    return found


def links(text: str) -> list[str]:
    """Every link and image target outside code: inline, reference definitions and HTML."""
    targets = []
    for line in prose_lines(text):
        line = CODE_SPAN.sub("", line)
        targets += [m["target"].strip("<>") for m in INLINE_LINK.finditer(line)]
        targets += [m["target"] for m in HTML_LINK.finditer(line)]
        definition = REFERENCE_DEFINITION.match(line)
        if definition:
            targets.append(definition["target"].strip("<>"))
    return targets


def broken_links(page: Path, root: Path) -> list[str]:
    """What is wrong with each relative link of a page: a missing file, a file outside the project, or
    an anchor its target page does not have."""
    problems = []
    for target in links(page.read_text(encoding="utf-8")):
        if SCHEME.match(target):
            continue
        path, _, anchor = target.partition("#")
        if path.startswith("/"):
            resolved = (root / path.lstrip("/")).resolve()
        else:
            resolved = (page.parent / path).resolve() if path else page.resolve()
        if not resolved.is_relative_to(root.resolve()):
            problems.append(f"{target}: outside the project, so a clone cannot follow it")
        elif not resolved.exists():
            problems.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved.read_text(encoding="utf-8")):
            problems.append(f"{target}: {resolved.name} has no heading with the anchor #{anchor}")
    return problems


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_anchor_resolves(page):
    assert broken_links(page, ROOT) == []


def test_every_docs_page_is_reachable_from_the_readme():
    reached, todo = set(), [ROOT / "README.md"]
    while todo:
        page = todo.pop()
        if page in reached:
            continue
        reached.add(page)
        for target in links(page.read_text(encoding="utf-8")):
            path = target.partition("#")[0]
            if path.endswith(".md") and not SCHEME.match(path):
                resolved = (page.parent / path).resolve()
                if resolved.is_file():
                    todo.append(resolved)
    unreached = sorted(str(p.relative_to(ROOT)) for p in PAGES if p.resolve() not in reached)
    assert unreached == [], "docs pages that no chain of links from the README reaches"


def test_the_checker_finds_what_is_broken(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A page\n\n## Set-up: `seqtext serve`, then go\n", encoding="utf-8")
    page = tmp_path / "README.md"
    page.write_text(
        "# Title\n\n[ok](docs/a.md#set-up-seqtext-serve-then-go) [ok](#title) [web](https://example.org/x)\n"
        "[no file](docs/b.md) [no anchor](docs/a.md#setup) ![no image](docs/x.png)\n"
        "[outside](../elsewhere/spec.md) `[in code](nowhere.md)`\n\n"
        "```sh\n[in a block](nowhere.md)\n```\n",
        encoding="utf-8",
    )
    assert broken_links(page, tmp_path) == [
        "docs/b.md: no such file",
        "docs/a.md#setup: a.md has no heading with the anchor #setup",
        "docs/x.png: no such file",
        "../elsewhere/spec.md: outside the project, so a clone cannot follow it",
    ]


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("Training curves: `seqtext plot` and `--plot`", "training-curves-seqtext-plot-and---plot"),
        ("bench_sentiment, seed-averaged", "bench_sentiment-seed-averaged"),
        ("Serving: `seqtext serve`, an HTTP API and a page", "serving-seqtext-serve-an-http-api-and-a-page"),
        ("¿Qué tal? Año 2026", "qué-tal-año-2026"),
        ("A [linked](x.md) **bold** heading", "a-linked-bold-heading"),
    ],
)
def test_slugs_follow_github(heading, anchor):
    assert slug(heading) == anchor


def test_repeated_headings_are_numbered():
    assert anchors("# Notes\n\n## Notes\n\n## Notes\n\nSetext\n------\n") == {"notes", "notes-1", "notes-2", "setext"}


@pytest.mark.skipif(not SPEC.is_file(), reason="needs ../shared/specs/completion-metrics.md (present in CI)")
def test_keystroke_savings_page_copies_the_metric_spec_faithfully():
    spec_body = SPEC.read_text(encoding="utf-8").split("\n", 1)[1].strip()
    page = (ROOT / "docs" / "keystroke-savings.md").read_text(encoding="utf-8")
    assert spec_body in page, "docs/keystroke-savings.md differs from the metric spec: copy it again"


def test_the_code_and_docs_cite_the_keystroke_savings_page_in_the_project():
    cited_outside = [
        str(path.relative_to(ROOT))
        for path in [*(ROOT / "seqtext").rglob("*.py"), *PAGES]
        if path.name != "benchmarks.md"  # rows written by the benchmark scripts, kept as written
        if "specs/completion-metrics.md" in path.read_text(encoding="utf-8")
    ]
    assert cited_outside == [], "cite docs/keystroke-savings.md, which a clone has"
