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
