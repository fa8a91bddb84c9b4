"""docs/benchmarks.md: one section per benchmark script, each a table followed by notes on the targets.

Shared by the bench_*.py scripts so that a new row lands under the last row of its own table, not
after the notes or in another script's section.
"""

from __future__ import annotations

from pathlib import Path

PATH = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def append_row(section: str, table_head: str, row: str, path: Path = PATH) -> None:
    """Add `row` (markdown table lines) under the first table of '## {section}', creating the section
    (with `table_head`: any intro text, then the header and separator lines) when it is missing."""
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else ["# Benchmarks"]
    heading = f"## {section}"
    if heading not in lines:
        lines += ["", heading, "", *table_head.strip("\n").splitlines()]
    start = lines.index(heading)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    after = next(i for i in range(start, end) if lines[i].startswith("|"))  # the section's first table
    while after < end and lines[after].startswith("|"):
        after += 1
    lines[after:after] = row.strip("\n").splitlines()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
