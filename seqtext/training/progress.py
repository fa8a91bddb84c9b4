"""Training progress for the Python API (`train_lm(..., progress=…)`, `train_classifier`): one display
that updates in place, never a line per step.

- In a notebook (Jupyter, JupyterLab, Colab, VS Code: an IPython kernel), one output cell updated in
  place through IPython's display handles: a bar and the figures, with the last few evaluations.
- In a terminal, one line on stderr rewritten in place, each evaluation printed once above it.
- Elsewhere (stderr a file or a pipe), one line when training starts, per evaluation and at the end.

Steps redraw at most every REFRESH seconds and an evaluation at most once, so a run of any length
makes a bounded number of updates. The command line draws its own bar (seqtext.cli.common).
"""

from __future__ import annotations

import html
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal, TextIO

from seqtext.training.loop import Callback, TrainEvent

Mode = Literal["notebook", "terminal", "lines"]
REFRESH = 0.5  # seconds between two redraws for steps; an evaluation or a saved checkpoint redraws at once
EVALUATIONS_SHOWN = 5  # the last evaluations the notebook display keeps under the bar
BAR = 24


def in_notebook() -> bool:
    """True inside an IPython kernel (Jupyter, Colab, VS Code), where rich output is shown; a plain
    `ipython` in a terminal has no kernel. IPython is never imported here: a kernel already has."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and getattr(shell, "kernel", None) is not None


def mode_for(progress: bool | None, stream: TextIO | None = None) -> Mode | None:
    """How to show progress: None (progress=False, or progress=None outside a notebook) or a mode."""
    if progress is False or (progress is None and not in_notebook()):
        return None
    if in_notebook():
        return "notebook"
    stream = stream or sys.stderr
    return "terminal" if stream is not None and stream.isatty() else "lines"


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


class TrainingDisplay:
    """A Callback that draws TrainEvents as one updating display; `close()` draws the last state.

    `show` makes the notebook's display (IPython.display.display with a display id) and returns its
    handle; `clock` times the redraws. Tests pass their own; `updates` counts what was drawn.
    """

    def __init__(
        self,
        mode: Mode,
        *,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        show: Callable[[Any], Any] | None = None,
    ) -> None:
        self.mode, self.stream, self.clock, self.show = mode, stream, clock, show
        self.started = clock()
        self.last_drawn = -float("inf")
        self.handle: Any = None
        self.updates = 0
        self.header = ""
        self.fraction, self.step, self.epoch = 0.0, 0, 0.0
        self.loss: float | None = None
        self.speed: float | None = None
        self.unit = "tok"
        self.figure = "bpc -"
        self.evaluations: list[str] = []
        self.status = "training"
        self.begun = False  # a "start" event came: before it (bad data, another rank) nothing is drawn

    def __call__(self, event: TrainEvent) -> None:
        self.fraction, self.step, self.epoch = min(1.0, max(0.0, event.progress)), event.step, event.epoch
        if event.kind == "start":
            self.begun, info = True, event.info
            self.unit = info.get("unit", "tok")
            self.figure = "acc -" if "train_texts" in info else "bpc -"
            self.header = f"{info['parameters']:,} parameters · {info['device']} · {info['precision']}"
            self._line(self.header)
        elif event.kind == "step":
            self.loss, self.speed = event.loss, event.tokens_per_s
            if self.clock() - self.last_drawn < REFRESH:
                return
        elif event.kind == "eval":
            m = event.metrics
            self.figure = f"acc {_fmt(m['val_accuracy'])}" if "val_accuracy" in m else f"bpc {_fmt(m.get('val_bpc'))}"
            shown = "  ".join(f"{k} {v:.4f}" for k, v in m.items())
            self.evaluations.append(f"step {event.step:>6,}  epoch {event.epoch:>5.2f}  {shown}")
            self._line(self.evaluations[-1])
        elif event.kind == "save":
            self.evaluations[-1:] = [f"{line}  (best so far, saved)" for line in self.evaluations[-1:]]
            return  # drawn with its evaluation's next redraw: a save always follows an evaluation
        else:
            return  # "plan": the schedule's business, not the learner's
        self._draw()

    def close(self, status: str) -> None:
        """The final state: 'done', or why training stopped."""
        if not self.begun:
            return
        self.status = status
        if self.mode == "lines":
            self._line(f"{status}: {self.text_line()}")
        self._draw(final=True)

    def text_line(self) -> str:
        filled = round(BAR * self.fraction)
        speed = "-" if self.speed is None else f"{self.speed:,.0f}"
        elapsed = self.clock() - self.started
        return (
            f"{'█' * filled}{'░' * (BAR - filled)} {self.fraction:4.0%}  step {self.step:,}  "
            f"loss {_fmt(self.loss)}  {self.figure}  {speed} {self.unit}/s  {elapsed:.0f}s  {self.status}"
        )

    def _line(self, text: str) -> None:
        """A line printed once (terminal and lines modes); the notebook keeps it in its display."""
        if self.mode == "notebook" or self.stream is None:
            return
        self.stream.write(("\r\033[K" if self.mode == "terminal" else "") + text + "\n")
        self.stream.flush()

    def _draw(self, final: bool = False) -> None:
        self.last_drawn = self.clock()
        if self.mode == "lines":
            return
        self.updates += 1
        if self.mode == "terminal" and self.stream is not None:
            self.stream.write("\r\033[K" + self.text_line() + ("\n" if final else ""))
            self.stream.flush()
            return
        view = _View(self.header, self.text_line(), self.fraction, self.evaluations[-EVALUATIONS_SHOWN:])
        if self.handle is None:
            self.handle = (self.show or _ipython_show)(view)
        else:
            self.handle.update(view)


class _View:
    """What the notebook shows: HTML (a bar, the figures, the last evaluations) and a plain-text fallback."""

    def __init__(self, header: str, line: str, fraction: float, evaluations: list[str]) -> None:
        self.header, self.line, self.fraction, self.evaluations = header, line, fraction, evaluations

    def __repr__(self) -> str:
        return "\n".join(filter(None, [self.header, *self.evaluations, self.line]))

    def _repr_html_(self) -> str:
        figures = html.escape(self.line.split(" ", 1)[1])  # the text bar is drawn as a real one here
        rows = "".join(f"<div>{html.escape(line)}</div>" for line in self.evaluations)
        return (
            f'<div style="font-family:monospace;font-size:12px"><div>{html.escape(self.header)}</div>{rows}'
            f'<progress value="{self.fraction:.3f}" max="1" style="width:16em"></progress> {figures}</div>'
        )


def _ipython_show(view: _View) -> Any:
    from IPython.display import display  # only in a notebook, where IPython is already imported

    return display(view, display_id=True)


@contextmanager
def progress_shown(progress: bool | None, callback: Callback | None) -> Iterator[Callback | None]:
    """The callback a training call hands the loop: the caller's own, and a TrainingDisplay when
    `progress` asks for one (True: always; None: in a notebook; False: never)."""
    mode = mode_for(progress)
    if mode is None:
        yield callback
        return
    display = TrainingDisplay(mode, stream=sys.stderr)

    def both(event: TrainEvent) -> None:
        display(event)
        if callback is not None:
            callback(event)

    try:
        yield both
    except KeyboardInterrupt:
        display.close("interrupted")
        raise
    except Exception as exc:
        display.close(f"stopped: {exc}")
        raise
    display.close("done")
