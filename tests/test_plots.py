"""`seqtext plot`, `train … --plot` and the figures of seqtext.plots: real PNGs of the expected size,
matplotlib optional, and one clear line for every bad input."""

import json
import signal
import subprocess
import sys
import time

import pytest
from helpers import PHRASES, ROOT, SENTENCES, assert_clean_error, copy_run, invoke, png_size, train_tiny

from seqtext import plots

TINY = ["--embed-dim", "16", "--hidden-dim", "16", "--layers", "1", "--bptt", "16", "--batch-size", "8"]
TINY += ["--precision", "fp32", "--device", "cpu"]
W, H = (round(inches * plots.DPI) for inches in plots.PANEL)  # one panel of curves, in pixels


@pytest.fixture(scope="module")
def logged_run(lines_file, tmp_path_factory):
    return train_tiny(lines_file, tmp_path_factory.mktemp("plots") / "logged", log_gradients=True)


@pytest.fixture()
def no_matplotlib(monkeypatch):
    """Simulate an install without the [plot] extra: importing matplotlib fails."""
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now raises ImportError


def test_plot_one_run(char_run, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "curves.png"
    result = invoke("plot", char_run, "--out", out)
    assert result.exit_code == 0, result.output
    assert "wrote" in result.stderr and png_size(out) == (W, H)


def test_plot_several_runs_metrics_and_axes(char_run, prose_run, logged_run, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "nested" / "figure.png"  # missing folders are made
    result = invoke(
        "plot", char_run, prose_run, "--out", out, "--metric", "loss", "--metric", "val_bpc", "--x", "seconds"
    )
    assert result.exit_code == 0, result.output
    assert png_size(out) == (2 * W, H)
    three = ["--metric", "grad_norm", "--metric", "grad_tt", "--metric", "grad_norm.rnn.l0"]
    result = invoke("plot", logged_run, "--out", out, *three, "--x", "epoch")
    assert result.exit_code == 0, result.output
    assert png_size(out) == (2 * W, 2 * H)  # two columns, panels wrap onto a second row
    assert invoke("plot", logged_run, logged_run, "--out", out, "--metric", "grad_tt").exit_code == 0
    assert invoke("plot", char_run, "--out", tmp_path / "f.svg").exit_code == 0
    assert (tmp_path / "f.svg").read_text(encoding="utf-8").lstrip().startswith("<?xml")


def test_legends_name_the_run_and_its_model(char_run):
    (curves,) = plots.read_runs([char_run])
    assert curves.label == f"{char_run} · LSTM · char · 1×32"
    model = {"cell": "gru", "level": "word", "layers": 2, "hidden_dim": 128, "bidirectional": True}
    assert plots.model_label(model) == "biGRU · word · 2×128"


def test_log_scale_only_where_values_span_a_factor_of_ten():
    class Axis:
        scale = "linear"

        def set_yscale(self, scale):
            self.scale = scale

    for values, expected in [([3.0, 2.5, 2.1], "linear"), ([40.0, 3.0], "log"), ([-1.0, 50.0], "linear")]:
        axis = Axis()
        plots._scale(axis, values)
        assert axis.scale == expected


def test_plot_refuses_bad_input(char_run, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "x.png"
    result = invoke("plot", char_run, "--out", out, "--metric", "val_accuracy")
    assert_clean_error(result, f"{char_run} has no 'val_accuracy' in metrics.jsonl; it has: epoch, seconds, step,")
    assert "val_bpc" in result.stderr
    silent = copy_run(char_run, tmp_path / "silent")
    (silent / "metrics.jsonl").unlink()
    assert_clean_error(invoke("plot", silent, "--out", out), "has no metrics yet")
    damaged = copy_run(char_run, tmp_path / "damaged")
    lines = (damaged / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    (damaged / "metrics.jsonl").write_text("\n".join([lines[0], lines[1][:20], *lines[2:]]) + "\n", encoding="utf-8")
    assert_clean_error(invoke("plot", damaged, "--out", out), "metrics.jsonl, line 2: not readable JSON")
    (damaged / "metrics.jsonl").write_text("[1, 2]\n", encoding="utf-8")
    assert_clean_error(invoke("plot", damaged, "--out", out), "line 1: not a JSON object (a JSON list)")
    assert_clean_error(invoke("plot", char_run, "--out", tmp_path), "is a directory; give a file name")
    assert_clean_error(invoke("plot", char_run, "--out", tmp_path / "x.jpg"), "give a file name ending in .png")
    assert_clean_error(invoke("plot", tmp_path, "--out", out), "is not a seqtext run")
    assert not out.exists()


def test_missing_matplotlib_is_one_clear_line(char_run, lines_file, tmp_path, no_matplotlib):
    expected = 'needs matplotlib, an optional extra; install it with: pip install "seqtext[plot]"'
    assert_clean_error(invoke("plot", char_run, "--out", tmp_path / "x.png"), f"seqtext plot {expected}")
    result = invoke("train", "lm", lines_file, "--out", tmp_path / "r", *TINY, "--epochs", "1", "--plot")
    assert_clean_error(result, f"--plot {expected}")
    assert not (tmp_path / "r").exists(), "refused before training starts"
    result = invoke("gradients", char_run, lines_file, "--plot", tmp_path / "g.png")
    assert_clean_error(result, f"--plot {expected}")
    assert_clean_error(invoke("evaluate", char_run, lines_file, "--plot", tmp_path / "c.png"), expected)


@pytest.mark.parametrize("log_gradients", [False, True])
def test_train_lm_plot_writes_curves_into_the_run(lines_file, tmp_path, log_gradients):
    pytest.importorskip("matplotlib")
    out = tmp_path / "r"
    extra = ["--log-gradients"] if log_gradients else []
    result = invoke("train", "lm", lines_file, "--out", out, *TINY, "--epochs", "2", "--plot", *extra)
    assert result.exit_code == 0, result.output
    assert f"wrote {out / 'curves.png'}" in result.stderr.replace("\n", "")
    # loss and bits per character; with --log-gradients also the gradient norm and the gradient through time
    assert png_size(out / "curves.png") == ((2 * W, 2 * H) if log_gradients else (2 * W, H))


def test_train_classifier_plot_when_stopped_by_patience(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "clf"
    args = ["--embed-dim", "8", "--hidden-dim", "8", "--epochs", "30", "--patience", "1", "--device", "cpu"]
    result = invoke("train", "classifier", PHRASES, "--out", out, *args, "--plot")
    assert result.exit_code == 0, result.output
    assert "stopped by patience" in result.stderr.replace("\n", " ")
    assert png_size(out / "curves.png") == (2 * W, H)  # loss and validation accuracy


def test_ctrl_c_draws_the_curves_so_far(tmp_path):
    pytest.importorskip("matplotlib")
    data = tmp_path / "many.txt"
    data.write_text("".join(s + "\n" for s in SENTENCES * 1000), encoding="utf-8")  # ~700 steps per epoch
    out = tmp_path / "r"
    command = [sys.executable, "-m", "seqtext", "train", "lm", str(data), "--out", str(out), *TINY]
    command += ["--epochs", "1", "--eval-every", "20", "--plot"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        while not (out / "config.json").exists() or not (out / "trainer_state.json").exists():
            time.sleep(0.02)  # wait for a kept evaluation, not for a clock
            assert process.poll() is None, process.stderr.read()
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate()
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert "curves.png" in stderr and "--resume" in stderr and "Traceback" not in stderr
    assert png_size(out / "curves.png") == (2 * W, H)
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    assert steps and steps[-1] < 700


def test_confusion_matrix_lives_in_plots(tmp_path):
    pytest.importorskip("matplotlib")

    from types import SimpleNamespace

    metrics = SimpleNamespace(labels=("neg", "pos"), confusion=[[3, 1], [0, 4]], accuracy=0.875, macro_f1=0.873)
    out = plots.plot_confusion(metrics, tmp_path / "c.png", "two labels")
    assert png_size(out) == (round(5.3 * plots.DPI), round(3.9 * plots.DPI))
