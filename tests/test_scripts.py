"""Every benchmark script runs end to end in --smoke mode (seconds) on the real corpora."""

import json
import shutil
import subprocess
import sys

import pytest
from helpers import ROOT, needs_shared_data, png_size


def smoke_report(script: str, *options: str) -> dict:
    """Run a benchmark script's --smoke mode from the project root; its one JSON object."""
    command = [sys.executable, str(ROOT / "scripts" / script), *options, "--smoke"]
    result = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    return json.loads(result.stdout)


@needs_shared_data
@pytest.mark.parametrize("script", ["bench_lm.py", "bench_keyboard.py", "bench_classify.py"])
def test_benchmark_smoke(script):
    report = smoke_report(script)
    assert report["benchmark"] == script.removesuffix(".py")
    machine = report["machine"]
    assert machine["profile"] == "native" and machine["env"] == {}
    assert machine["isa"] and machine["threads"] >= 1 and machine["precision_auto"] in ("bf16", "fp32")


@needs_shared_data
def test_laptop_profile_caps_the_vector_isa_and_trains_in_fp32():
    """--profile laptop restarts the benchmark with ATen, oneDNN and MKL capped at AVX2: no native bf16."""
    report = smoke_report("bench_lm.py", "--profile", "laptop")
    machine = report["machine"]
    assert machine["profile"] == "laptop" and machine["isa"] != "AVX512"  # DEFAULT on a CPU without AVX2
    assert machine["env"] == {
        "ATEN_CPU_CAPABILITY": "avx2",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    }
    assert not machine["bf16_native"] and report["seqtext"]["precision"] == "fp32"


def test_every_benchmark_takes_the_profile_and_names_its_machine():
    for script in sorted((ROOT / "scripts").glob("bench_*.py")):
        text = script.read_text(encoding="utf-8")
        assert "add_profile_option(parser)" in text and "enter_profile(args.profile)" in text, script.name
        assert "describe(args.profile)" in text and "row_cells(" in text, script.name


def test_any_command_runs_as_on_the_profiles_machine():
    show = [sys.executable, "-c", "import os; print(os.environ.get('ONEDNN_MAX_CPU_ISA'), os.environ.get('KEEP'))"]
    for profile, cap in [("laptop", "AVX2"), ("native", "None")]:
        command = [sys.executable, str(ROOT / "scripts" / "machine.py"), "--profile", profile, *show]
        env = {"PATH": "/usr/bin:/bin", "KEEP": "kept", "ONEDNN_MAX_CPU_ISA": "AVX512_CORE"}
        result = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
        assert result.returncode == 0 and result.stdout.split() == [cap, "kept"], result.stderr
    missing = [sys.executable, str(ROOT / "scripts" / "machine.py"), "--profile", "laptop", "no-such-command-x"]
    result = subprocess.run(missing, capture_output=True, text=True, check=False)
    assert result.returncode == 127 and result.stderr == "error: no-such-command-x: No such file or directory\n"


def test_profile_environment(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    from machine import LAPTOP_ENV, profile_env

    capped = {"PATH": "/bin", "ONEDNN_MAX_CPU_ISA": "AVX512_CORE"}
    assert profile_env("native", capped) == {"PATH": "/bin"}  # a shell's cap does not pass for native
    assert profile_env("laptop", capped) == {"PATH": "/bin", **LAPTOP_ENV}
    with pytest.raises(ValueError, match="--profile must be one of native, laptop"):
        profile_env("desktop", {})
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_lm.py"), "--profile", "desktop"], capture_output=True, text=True
    )
    assert result.returncode == 2 and "invalid choice: 'desktop'" in result.stderr


@needs_shared_data
def test_personal_keyboard_benchmark_smoke():
    """bench_keyboard.py --personal (scripts/keyboard_personal.py): the gain of learning and latency under load."""
    report = smoke_report("bench_keyboard.py", "--personal")
    assert report["benchmark"] == "bench_keyboard_personal"
    personal = report["personal"]
    assert set(personal["by_weight"]) == {"0.1", "0.3"} and personal["chosen_weight"] in (0.1, 0.3)
    for figures in personal["by_weight"].values():
        assert figures["learned_words"] > 0 and 0 <= figures["quijote_second"]["ksr"] < 1
    for engine in ("before", "after"):
        for load in ("idle", "busy"):
            assert report["latency"][engine][load]["calls"] > 0 and report["latency"][engine][load]["p99"] > 0


def test_benchmark_rows_go_under_their_own_table(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    from benchmarks_md import append_row

    page = tmp_path / "benchmarks.md"
    page.write_text("# Benchmarks\n\n## a\n\n| x |\n|---|\n| 1 |\n\nNotes.\n\n| trial |\n|---|\n\n")
    page.write_text(page.read_text() + "## b\n\n| y |\n|---|\n")
    append_row("a", "unused", "| 2 |", page)
    append_row("b", "unused", "| 3 |\n| 4 |", page)
    append_row("c", "Intro.\n\n| z |\n|---|", "| 5 |", page)
    assert page.read_text() == (
        "# Benchmarks\n\n## a\n\n| x |\n|---|\n| 1 |\n| 2 |\n\nNotes.\n\n| trial |\n|---|\n\n"
        "## b\n\n| y |\n|---|\n| 3 |\n| 4 |\n\n## c\n\nIntro.\n\n| z |\n|---|\n| 5 |\n"
    )


def test_bench_serve_smoke():
    """The serving benchmark end to end on tiny models and the project's own corpora (no ../shared needed)."""
    pytest.importorskip("fastapi", reason="needs the serve extra: pip install -e '.[serve]'")
    pytest.importorskip("psutil", reason="needs psutil: pip install -e '.[bench]'")
    report = smoke_report("bench_serve.py")
    assert report["benchmark"] == "bench_serve" and report["failures"] == 0
    results = report["results"]
    assert results["typing"]["requests"] > 0 and results["mixed"]["classify"]["requests"] > 0
    assert results["mixed"]["faults"]["sent"] > 0 and results["mixed"]["streams_left"]["count"] > 0
    assert results["server"]["alive_after"]
    assert results["engine_in_process"]["keystrokes_per_s"] > 0  # the engine alone, same texts, same run
    assert results["typing"]["ratio_to_engine"] == pytest.approx(
        results["typing"]["requests_per_s"] / results["engine_in_process"]["keystrokes_per_s"]
    )


@needs_shared_data
@needs_shared_data
def test_bench_page_smoke():
    """Three sentences typed in the page's keyboard in headless Chromium: the page's own latency figures."""
    pytest.importorskip("fastapi", reason="needs the serve extra: pip install -e '.[serve]'")
    pytest.importorskip("playwright", reason="needs playwright: pip install -e '.[dev]'")
    if not shutil.which("chromium"):
        pytest.skip("needs Debian's chromium (apt-get install chromium; .ci/run installs it)")
    report = smoke_report("bench_page.py")
    figures = report["in_page"]
    assert report["benchmark"] == "bench_page" and report["sentences"] == 3
    assert figures["keystrokes"] > 20 and 0 <= figures["p50_ms"] <= figures["p99_ms"] <= figures["max_ms"]
    assert figures["kernel"] == "WebAssembly SIMD"  # Chromium compiles the page's kernel under its CSP


def test_cell_study_smoke_writes_its_page(tmp_path):

    docs = tmp_path / "docs"
    command = [sys.executable, str(ROOT / "scripts" / "study_cells.py"), "--smoke", "--runs", tmp_path / "runs"]
    result = subprocess.run([*map(str, command), "--docs", str(docs)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert [r["name"] for r in report["rows"]] == [
        f"{c}-{k}" for c in ("rnn", "lstm", "gru") for k in ("clip", "noclip")
    ]
    page = (docs / "cells.md").read_text(encoding="utf-8")
    assert "**Smoke run**" in page and "<!-- interpretation:" in page
    assert page.count("| Elman RNN |") == page.count("| LSTM |") == page.count("| GRU |") == 2
    assert "seqtext plot " in page and "seqtext gradients " in page and page.count("seqtext train lm ") == 6
    for figure in ("cells_curves.png", "cells_gradients.png"):
        assert f"]({figure})" in page and png_size(docs / figure)[0] > 0
    lstm = next(r for r in report["rows"] if r["name"] == "lstm-clip")
    assert lstm["parameters"] > next(r["parameters"] for r in report["rows"] if r["name"] == "gru-clip")
    assert 0 <= lstm["clipped"] <= 1 and lstm["valid_bpc"] > 0


def test_bench_distributed_smoke():
    """One process against two under torchrun, end to end on the project's own corpus (no ../shared needed)."""
    report = smoke_report("bench_distributed.py")
    assert report["benchmark"] == "bench_distributed" and report["global_batch"] == 8
    one, two = report["one_process"], report["processes"]
    assert (one["processes"], one["threads_per_process"], two["processes"], two["threads_per_process"]) == (1, 2, 2, 1)
    assert two["batch_size_per_process"] == 4 and one["tokens_per_s"] > 0 and two["tokens_per_s"] > 0


def test_keyboard_diagnosis_names_the_causes(monkeypatch):
    from collections import Counter

    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    from keyboard_diagnosis import cause_of, nearly_repeats, repeat_index

    index = repeat_index(["Voy al parque con mi perro."])
    assert nearly_repeats("Voy al parque con mi gato.", index)  # one word replaced
    assert nearly_repeats("voy al parque con mi perro", index)  # case and punctuation aside
    assert not nearly_repeats("Voy a la playa con mi gato.", index)
    known, counts = {"Voy", "al", "parque", "Mary", "come", "y", "bien"}, Counter({"parque": 9, "come": 2, "bien": 9})
    line = "¿Voy al parque, bien y Mary come"
    assert cause_of(line, 1, "Voy", known, counts, False) == "first_word"
    assert cause_of(line, line.index("parque"), "parque", known, counts, False) == "other"
    assert cause_of(line, line.index("bien"), "bien", known, counts, False) == "after_punctuation"
    assert cause_of(line, line.index("Mary"), "Mary", known, counts, False) == "name"
    assert cause_of(line, line.index("come"), "come", known, counts, False) == "rare"
    assert cause_of(line, line.index("parque"), "parque", known, counts, True) == "near_repeat"
    assert cause_of(line, line.index("parque"), "parquecito", known, counts, True) == "oov"


def test_keystroke_bands_add_up_to_the_lead(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    from keyboard_diagnosis import keystroke_bands, word_costs

    lines = ["Voy al parque", "Mi perro come"]
    oracle = {"": ["Voy", "Mi"], "Voy ": ["al"], "Voy al ": ["parque"], "Mi ": ["perro"], "Mi perro ": ["come"]}
    knows_all = lambda typed, k: oracle.get(typed, [])  # noqa: E731
    after_one = lambda typed, k: ["perro"] if typed.endswith("p") else []  # noqa: E731
    assert word_costs(knows_all, lines) == [(1, True)] * 6
    assert word_costs(after_one, lines)[4] == (2, False) and word_costs(after_one, lines)[0] == (3, False)
    report = keystroke_bands({"a": knows_all, "b": after_one}, lines, ["Voy al parque hoy"], known={"Voy", "al"})
    characters = sum(len(line) for line in lines)
    lead = 100 * (sum(k for k, _ in word_costs(after_one, lines)) - 6) / characters
    for bands in report["bands"].values():
        assert sum(b["points"] for b in bands.values()) == pytest.approx(lead, abs=1e-2)
        assert sum(b["words"] for b in bands.values()) == 6
    assert report["bands"]["line so far starts a training line"]["1-2 words"]["words"] == 2  # "al", "parque"
    assert report["bands"]["recurrent model's vocabulary"]["outside"]["words"] == 4
