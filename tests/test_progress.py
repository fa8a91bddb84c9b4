"""The Python API in a notebook: training progress is one display updated in place (a bounded number
of updates, whatever the number of steps), figures come back as files a notebook shows inline, and
nothing is printed to stdout or stderr there."""

import io

import pytest
from helpers import PHRASES, TINY_MODEL, TINY_TRAIN

import seqtext
from seqtext import ClassifierConfig, ClassifierTrainConfig, plots
from seqtext.training import progress
from seqtext.training.loop import TrainEvent

START = {"parameters": 1234, "device": "cpu", "precision": "fp32", "steps_per_epoch": 10}


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeHandle:
    """What IPython.display.display(..., display_id=True) returns: a handle whose update() redraws."""

    def __init__(self, shown: list) -> None:
        self.shown = shown

    def update(self, view) -> None:
        self.shown.append(view)


@pytest.fixture()
def notebook(monkeypatch):
    """A simulated notebook: progress sees a kernel, and every display and update is recorded."""
    shown: list = []
    handles: list = []

    def show(view):
        shown.append(view)
        handles.append(FakeHandle(shown))
        return handles[-1]

    monkeypatch.setattr(progress, "in_notebook", lambda: True)
    monkeypatch.setattr(plots, "in_notebook", lambda: True)
    monkeypatch.setattr(progress, "_ipython_show", show)
    return shown, handles


def simulate(display, steps: int, evals: int, seconds_per_step: float, clock: FakeClock) -> None:
    display(TrainEvent("start", 0, 0.0, 0.0, info=START))
    for step in range(1, steps + 1):
        clock.now += seconds_per_step
        display(TrainEvent("step", step, step / 100, step / steps, loss=2.0, tokens_per_s=1000.0))
        if step % (steps // evals) == 0:
            display(TrainEvent("eval", step, step / 100, step / steps, metrics={"val_loss": 1.5, "val_bpc": 2.1}))
            display(TrainEvent("save", step, step / 100, step / steps, metrics={"val_loss": 1.5}))
    display.close("done")


def test_a_long_run_makes_a_bounded_number_of_updates(notebook):
    shown, handles = notebook
    clock = FakeClock()
    display = progress.TrainingDisplay("notebook", clock=clock)
    simulate(display, steps=20_000, evals=10, seconds_per_step=0.001, clock=clock)  # 20 simulated seconds
    assert len(handles) == 1, "one display, updated in place"
    # start, at most one redraw per REFRESH of steps, one per evaluation, the last one
    assert display.updates == len(shown) <= 1 + 20 / progress.REFRESH + 10 + 1
    last = shown[-1]
    assert "done" in repr(last) and "step 20,000" in repr(last) and "1,234 parameters" in repr(last)
    assert "best so far, saved" in repr(last) and len(last.evaluations) == progress.EVALUATIONS_SHOWN
    assert "<progress" in last._repr_html_() and 'value="1.000"' in last._repr_html_()


def test_steps_faster_than_the_refresh_draw_nothing_between_evaluations(notebook):
    shown, _ = notebook
    clock = FakeClock()
    display = progress.TrainingDisplay("notebook", clock=clock)
    simulate(display, steps=1000, evals=2, seconds_per_step=0.0, clock=clock)  # a frozen clock
    assert len(shown) == 1 + 2 + 1  # start, the two evaluations, the end


def test_terminal_rewrites_one_line_and_prints_each_evaluation_once():
    clock, stream = FakeClock(), io.StringIO()
    display = progress.TrainingDisplay("terminal", stream=stream, clock=clock)
    simulate(display, steps=5000, evals=5, seconds_per_step=0.001, clock=clock)
    text = stream.getvalue()
    assert text.count("\n") == 1 + 5 + 1  # the header, five evaluations, the final line
    assert text.count("\r") <= 1 + 5 + (5 / progress.REFRESH + 5 + 2)


def test_a_log_file_gets_a_line_per_evaluation_and_none_per_step():
    clock, stream = FakeClock(), io.StringIO()
    display = progress.TrainingDisplay("lines", stream=stream, clock=clock)
    simulate(display, steps=5000, evals=5, seconds_per_step=0.001, clock=clock)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 + 5 + 1 and lines[-1].startswith("done: ") and "\r" not in stream.getvalue()


def test_nothing_is_drawn_when_training_never_started(notebook):
    shown, _ = notebook
    display = progress.TrainingDisplay("notebook")
    display.close("stopped: bad data")
    assert shown == []


def test_progress_mode(monkeypatch):
    assert progress.mode_for(None) is None  # outside a notebook the API stays quiet by default
    assert progress.mode_for(True, io.StringIO()) == "lines"
    monkeypatch.setattr(progress, "in_notebook", lambda: True)
    assert progress.mode_for(None) == progress.mode_for(True) == "notebook"
    assert progress.mode_for(False) is None


def test_in_notebook_is_false_in_a_test_process():
    assert not progress.in_notebook()


def test_train_lm_in_a_notebook_shows_one_display_and_prints_nothing(notebook, lines_file, tmp_path, capfd):
    shown, handles = notebook
    steps: list[int] = []
    out = tmp_path / "lm"
    seqtext.train_lm(
        seqtext.LMConfig(**TINY_MODEL),
        seqtext.TrainConfig(data=str(lines_file), out=str(out), **TINY_TRAIN),
        callback=lambda e: steps.append(e.step) if e.kind == "step" else None,
    )
    assert len(handles) == 1 and steps, "one display, and the caller's own callback still called"
    assert len(shown) <= 1 + len(steps) and "done" in repr(shown[-1])
    assert capfd.readouterr() == ("", ""), "a notebook shows the display, nothing on stdout or stderr"


def test_train_classifier_progress_false_in_a_notebook_shows_nothing(notebook, tmp_path, capfd):
    shown, _ = notebook
    seqtext.train_classifier(
        ClassifierConfig(embed_dim=8, hidden_dim=8, dropout=0.0),
        ClassifierTrainConfig(data=str(PHRASES), out=str(tmp_path / "c"), epochs=1, precision="fp32", device="cpu"),
        progress=False,
    )
    assert shown == [] and capfd.readouterr() == ("", "")


def test_train_classifier_progress_in_a_notebook(notebook, tmp_path):
    shown, handles = notebook
    seqtext.train_classifier(
        ClassifierConfig(embed_dim=8, hidden_dim=8, dropout=0.0),
        ClassifierTrainConfig(data=str(PHRASES), out=str(tmp_path / "c"), epochs=2, precision="fp32", device="cpu"),
    )
    assert len(handles) == 1 and "acc " in repr(shown[-1]) and "done" in repr(shown[-1])


def test_a_failed_training_says_so_in_its_display(notebook, lines_file, tmp_path):
    shown, _ = notebook

    def fail(event):
        if event.kind == "step":
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        seqtext.train_lm(
            seqtext.LMConfig(**TINY_MODEL),
            seqtext.TrainConfig(data=str(lines_file), out=str(tmp_path / "lm"), **TINY_TRAIN),
            callback=fail,
        )
    assert "stopped: boom" in repr(shown[-1])


def test_figures_show_inline_and_leave_the_notebook_backend_alone(notebook, char_run, tmp_path, monkeypatch):
    matplotlib = pytest.importorskip("matplotlib")
    switched: list = []
    monkeypatch.setattr(matplotlib, "use", lambda *a, **k: switched.append(a))
    figure = seqtext.plot_curves([char_run], tmp_path / "curves.png")
    assert switched == [], "a notebook's inline backend stays: the learner's own figures still show"
    assert isinstance(figure, plots.FigureFile) and figure == tmp_path / "curves.png"
    assert figure._repr_png_() == (tmp_path / "curves.png").read_bytes() and figure._repr_svg_() is None
    svg = seqtext.plot_curves([str(char_run)], str(tmp_path / "curves.svg"))  # str paths, as a learner types them
    assert svg._repr_svg_().lstrip().startswith("<?xml") and svg._repr_png_() is None


def test_confusion_matrix_from_the_public_api(sentiment_run, tmp_path):
    pytest.importorskip("matplotlib")
    metrics = seqtext.evaluate(sentiment_run, PHRASES)
    figure = seqtext.plot_confusion(metrics, tmp_path / "confusion.png")
    assert figure._repr_png_()[:8] == b"\x89PNG\r\n\x1a\n"
