"""Every benchmark script runs end to end in --smoke mode (seconds) on the real corpora."""

import json
import subprocess
import sys

import pytest
from conftest import ROOT, needs_shared_data


@needs_shared_data
@pytest.mark.parametrize("script", ["bench_lm.py", "bench_keyboard.py"])
def test_benchmark_smoke(script):
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / script), "--smoke"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["benchmark"] == script.removesuffix(".py")


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
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_serve.py"), "--smoke"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["benchmark"] == "bench_serve" and report["failures"] == 0
    results = report["results"]
    assert results["typing"]["requests"] > 0 and results["mixed"]["classify"]["requests"] > 0
    assert results["mixed"]["faults"]["sent"] > 0 and results["mixed"]["streams_left"]["count"] > 0
    assert results["server"]["alive_after"]
