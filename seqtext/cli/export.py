"""`seqtext export`: a run as portable files (ONNX, safetensors, JSON) to run without seqtext."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from seqtext.cli.common import friendly_errors


class ExportFormat(str, Enum):
    onnx = "onnx"


@friendly_errors
def export_cmd(
    run: Annotated[Path, typer.Argument(help="The run directory to export (a language model or a classifier)")],
    out: Annotated[Path, typer.Option(help="The directory to write (new or empty; see --force)")],
    format: Annotated[ExportFormat, typer.Option(help="What to write the network as")] = ExportFormat.onnx,
    force: Annotated[bool, typer.Option(help="Write into --out even when it already holds files")] = False,
) -> None:
    """Write a run as portable files: the network as ONNX, weights and n-gram arrays as safetensors, the
    vocabulary and mixing weights as JSON, and a README.md that says how to use them (docs/export.md)."""
    from seqtext.export import check_target, export_run, require_extra

    check_target(out, force)  # before loading anything
    require_extra()
    written = export_run(run, out, format=format.value, force=force)
    typer.echo(f"wrote {len(written)} files to {out}: {', '.join(p.name for p in written)}", err=True)
