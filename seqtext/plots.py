"""Every figure seqtext draws: training curves, gradients through time, confusion matrices.

Matplotlib is an optional extra (`pip install "seqtext[plot]"`), imported only when a figure is
drawn. Figures have a fixed size in pixels (PANEL inches × DPI per panel), so they stay small and
comparable; the file type follows the name (.png, .svg or .pdf). Each function returns the file's
path as a FigureFile, which a notebook shows inline; in a notebook the backend is left as it is (the
learner's own figures stay inline), elsewhere it is Agg, which needs no display.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqtext.errors import ConfigError
from seqtext.files import check_output_file, replacing
from seqtext.runs.reading import read_header, read_metrics
from seqtext.training.progress import in_notebook

MISSING = (
    'needs matplotlib, an optional extra; install it with: pip install "seqtext[plot]" (or pip install matplotlib)'
)
FORMATS = (".png", ".svg", ".pdf")
PANEL = (4.8, 3.4)  # inches per panel of curves
WIDE = (6.4, 4.0)  # inches of a one-panel figure (gradients through time)
DPI = 100
LOSS = "loss"  # not a record key: train_loss (dashed) and val_loss (solid) on one panel
PROFILES = {"grad_tt"}  # record keys holding a curve over steps back, drawn against k rather than training time
CELLS = {"rnn": "Elman RNN", "lstm": "LSTM", "gru": "GRU", "cifg": "coupled-gate LSTM"}
X_LABELS = {"step": "optimizer step", "epoch": "epoch", "seconds": "seconds of training (evaluation included)"}
LABELS = {
    LOSS: "loss (nats per token)",
    "train_loss": "training loss (nats per token)",
    "val_loss": "validation loss (nats per token)",
    "val_bpc": "validation bits per character",
    "val_ppl": "validation perplexity",
    "val_accuracy": "validation accuracy",
    "val_macro_f1": "validation macro-F1",
    "tokens_per_s": "training tokens per second",
    "grad_norm": "gradient norm before clipping (mean per step)",
    "grad_norm_max": "largest gradient norm before clipping",
    "grad_clipped": "share of steps clipped",
    "grad_tt": r"$\|\partial L_T / \partial h_t\|$",
    "grad_tt_ratio": r"$\|\partial L_T / \partial h_{T-K}\| \;/\; \|\partial L_T / \partial h_T\|$",
}


def label_of(metric: str) -> str:
    """An axis label: the metric's meaning and unit, or its name."""
    if metric.startswith("grad_norm."):
        return f"gradient norm of {metric.removeprefix('grad_norm.')} (mean per step)"
    return LABELS.get(metric, metric)


def pyplot(what: str) -> Any:
    """matplotlib.pyplot on the file-only Agg backend, or a ConfigError naming `what` needs it."""
    try:
        import matplotlib

        if not in_notebook():
            matplotlib.use("Agg")  # no display needed; a notebook's inline backend needs none either
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError(f"{what} {MISSING}") from None
    return plt


def check_output(out: Path, flag: str = "--out", inputs: Sequence[str | Path] = ()) -> None:
    """Refuse an output the figure cannot be written to (or that is one of the inputs), before any work."""
    check_output_file(out, flag, inputs)
    if out.suffix.lower() not in FORMATS:
        raise ConfigError(f"{flag} {out}: give a file name ending in {', '.join(FORMATS)}")


def model_label(model: dict[str, Any]) -> str:
    """A model's cell, level and size in a few words: 'LSTM · char · 2×512'."""
    cell = CELLS.get(model.get("cell", ""), str(model.get("cell")))
    cell = f"bi{cell}" if model.get("bidirectional") else cell
    return f"{cell} · {model.get('level')} · {model.get('layers')}×{model.get('hidden_dim')}"


@dataclass(frozen=True)
class RunCurves:
    """What a run recorded at each evaluation, and how a legend names it."""

    run: str
    label: str
    records: list[dict[str, Any]]

    def keys(self) -> list[str]:
        return sorted({key for record in self.records for key in record})


def read_runs(runs: Sequence[str | Path]) -> list[RunCurves]:
    """The metrics.jsonl of each run, with a label naming the run and its model."""
    curves = []
    for run in runs:
        header = read_header(Path(run))
        records = read_metrics(Path(run))
        if not records:
            raise ConfigError(f"{run} has no metrics yet (metrics.jsonl is missing or empty): it was never evaluated")
        curves.append(RunCurves(str(run), f"{run} · {model_label(header['model'])}", records))
    return curves


def _check_keys(curves: list[RunCurves], metrics: Sequence[str], x: str) -> None:
    needed = [x, *(name for m in metrics for name in (("train_loss", "val_loss") if m == LOSS else (m,)))]
    for c in curves:
        have = c.keys()
        for name in needed:
            if name not in have:
                raise ConfigError(f"{c.run} has no {name!r} in metrics.jsonl; it has: {', '.join(have)}")


def _series(records: list[dict[str, Any]], x: str, key: str) -> tuple[list[float], list[float]]:
    points = [(r[x], r[key]) for r in records if _finite(r.get(key)) and _finite(r.get(x))]
    return [p[0] for p in points], [p[1] for p in points]


def _finite(value: Any) -> bool:
    """A number that can be drawn (a diverged loss is recorded as NaN or infinity: a gap in its curve)."""
    return isinstance(value, int | float) and math.isfinite(value)


def _scale(ax: Any, values: list[float]) -> None:
    """Log scale when the values are positive and span more than a factor of 10."""
    finite = [v for v in values if math.isfinite(v)]
    if finite and min(finite) > 0 and max(finite) / min(finite) > 10:
        ax.set_yscale("log")


def _grid(plt: Any, panels: int, size: tuple[float, float]) -> tuple[Any, list[Any]]:
    cols = min(panels, 2)
    rows = math.ceil(panels / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(size[0] * cols, size[1] * rows), dpi=DPI, squeeze=False)
    flat = list(axes.flat)
    for ax in flat[panels:]:
        ax.axis("off")
    return fig, flat[:panels]


class FigureFile(type(Path())):  # type: ignore[misc]  # PosixPath or WindowsPath: Path itself is abstract before 3.12
    """The path of a figure just drawn, which IPython (a notebook) shows as the picture itself."""

    def _repr_png_(self) -> bytes | None:
        return self.read_bytes() if self.suffix.lower() == ".png" else None

    def _repr_svg_(self) -> str | None:
        return self.read_text(encoding="utf-8") if self.suffix.lower() == ".svg" else None


def _save(plt: Any, fig: Any, out: Path) -> FigureFile:
    fig.tight_layout()
    with replacing(out) as tmp:  # the type follows the name; the temporary name has none
        fig.savefig(tmp, dpi=DPI, format=out.suffix.lower().lstrip("."))  # no bbox_inches="tight": pixels as asked
    plt.close(fig)  # shown once, as the returned file: never again by an inline backend at the cell's end
    return FigureFile(out)


def plot_curves(
    runs: Sequence[str | Path],
    out: str | Path,
    *,
    metrics: Sequence[str] = (LOSS,),
    x: str = "step",
    what: str = "plotting",
) -> Path:
    """Draw metrics.jsonl figures of one or more runs, one panel per metric and one line per run.

    `loss` draws training and validation loss together; `grad_tt` (recorded by --log-gradients)
    draws the gradient through time against steps back: for one run at every evaluation, shaded
    from early (light) to late (dark); for several runs, each run's last one.
    """
    out = Path(out)
    check_output(out)
    plt = pyplot(what)
    curves = read_runs(runs)
    _check_keys(curves, metrics, x)
    fig, axes = _grid(plt, len(metrics), PANEL)
    colours = plt.get_cmap("tab10")
    for ax, metric in zip(axes, metrics, strict=True):
        if metric in PROFILES:
            _profiles(plt, ax, curves, metric)
            continue
        values: list[float] = []
        for i, c in enumerate(curves):
            for key, style in (("train_loss", "--"), ("val_loss", "-")) if metric == LOSS else ((metric, "-"),):
                xs, ys = _series(c.records, x, key)
                ax.plot(xs, ys, style, color=colours(i % 10), label=c.label if style == "-" else None, lw=1.4)
                values += ys
        _scale(ax, values)
        ax.set_xlabel(X_LABELS.get(x, x))
        ax.set_ylabel(label_of(metric), fontsize=8)
        if metric == LOSS:
            ax.set_title("dashed: training · solid: validation", fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return _save(plt, fig, out)


def _profiles(plt: Any, ax: Any, curves: list[RunCurves], metric: str) -> None:
    """Gradient-through-time curves recorded during training, against steps back."""
    if len(curves) == 1:
        recorded = [r for r in curves[0].records if isinstance(r.get(metric), list)]
        shades = plt.get_cmap("viridis_r")
        for j, r in enumerate(recorded):
            label = f"step {r.get('step')}" if j in (0, len(recorded) - 1) else None
            ax.plot(r[metric], color=shades(0.15 + 0.85 * j / max(1, len(recorded) - 1)), lw=1.0, label=label)
        ax.set_title(curves[0].label, fontsize=8)
    else:
        for i, c in enumerate(curves):
            last = [r for r in c.records if isinstance(r.get(metric), list)][-1]
            ax.plot(
                last[metric], color=plt.get_cmap("tab10")(i % 10), lw=1.4, label=f"{c.label} (step {last.get('step')})"
            )
    ax.set_yscale("log")
    ax.set_xlabel("steps back, k = T − t")
    ax.set_ylabel(label_of(metric))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


def run_figures(run: Path) -> list[str]:
    """The panels of a run's curves.png: loss, its main figure, and what --log-gradients recorded."""
    have = set(read_runs([run])[0].keys())
    wanted = [LOSS, "val_bpc" if "val_bpc" in have else "val_accuracy", "grad_norm", "grad_tt"]
    return [m for m in wanted if m == LOSS or m in have]


def plot_gradients(reports: Sequence[dict[str, Any]], out: str | Path, *, what: str = "--plot") -> Path:
    """Gradients through time of several runs on one log-scale panel: the mean over windows, and the
    10th-90th percentile band (from `seqtext.lm.gradients.GradientReport.to_dict()`)."""
    out = Path(out)
    check_output(out, "--plot")
    plt = pyplot(what)
    fig, (ax,) = _grid(plt, 1, WIDE)
    for i, report in enumerate(reports):
        curve, colour = report["through_time"], plt.get_cmap("tab10")(i % 10)
        label = f"{report['run']} · {model_label(report['model'])}"
        ax.plot(curve["steps_back"], curve["mean"], color=colour, lw=1.6, label=label)
        ax.fill_between(curve["steps_back"], curve["p10"], curve["p90"], color=colour, alpha=0.15, lw=0)
    ax.set_yscale("log")
    ax.set_xlabel("steps back, k = T − t")
    ax.set_ylabel(LABELS["grad_tt"] + " (mean; band: 10th-90th percentile)", fontsize=8)
    data = sorted({Path(r["data"]).name for r in reports})
    ax.set_title(f"gradient of the last step's loss on {', '.join(data)}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(plt, fig, out)


def plot_confusion(metrics: Any, out: str | Path, title: str = "confusion matrix", *, what: str = "--plot") -> Path:
    """The confusion matrix (rows gold, columns predicted), each row normalised by its gold count."""
    out = Path(out)
    check_output(out, "--plot")
    plt = pyplot(what)
    rows = [[n / max(1, sum(row)) for n in row] for row in metrics.confusion]
    size = len(metrics.labels)
    fig, ax = plt.subplots(figsize=(1.4 * size + 2.5, 1.2 * size + 1.5), dpi=DPI)
    ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    for i in range(size):
        for j in range(size):
            text = f"{metrics.confusion[i][j]:,}\n{rows[i][j]:.0%}"
            colour = "white" if rows[i][j] > 0.5 else "black"
            ax.text(j, i, text, ha="center", va="center", color=colour, fontsize=8)
    names = [f"{c} {n}" for c, n in enumerate(metrics.labels)]
    ax.set_xticks(range(size), names, rotation=30, ha="right")
    ax.set_yticks(range(size), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title(f"{title}\naccuracy {metrics.accuracy:.3f} · macro-F1 {metrics.macro_f1:.3f}", fontsize=9)
    return _save(plt, fig, out)
