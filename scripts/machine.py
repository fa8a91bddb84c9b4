"""The machine a benchmark ran on, and `--profile laptop`: the same benchmark as on an fp32 laptop.

    python scripts/machine.py --profile laptop COMMAND...   # any command as on the laptop: sh scripts/demo.sh

Every bench_*.py takes `--profile native|laptop` (add_profile_option, then enter_profile before any
work) and names its machine in its JSON (`describe`) and in its docs/benchmarks.md row (`row_cells`).

`laptop` caps the vector instructions of the three libraries torch computes with at AVX2, as on a
laptop CPU without AVX-512 (Intel client CPUs since Alder Lake, AMD before Zen 4):
- ATen's own kernels: ATEN_CPU_CAPABILITY=avx2 (torch.backends.cpu.get_cpu_capability() says AVX2);
- oneDNN (the LSTM/GRU kernels, bf16 matmuls): ONEDNN_MAX_CPU_ISA=AVX2 (its verbose log says "isa:Intel
  AVX2", and torch then finds no native bf16, so `--precision auto` trains in fp32 as on the laptop);
- MKL (the fp32 matmuls of embeddings and heads): MKL_ENABLE_INSTRUCTIONS=AVX2 (MKL_VERBOSE=1 says
  "Intel(R) AVX2 enabled processors").
Each library reads its variable once, when first used, so the benchmark starts itself again with the
profile's environment (which the processes it starts inherit) unless it already has it. `native`
clears the three, so that a shell which set them does not pass a capped machine off as native.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path
from typing import Any

LAPTOP_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
PROFILES = ("native", "laptop")
TABLE_COLUMNS = "profile | machine"  # the two columns every benchmark table has after its command


def add_profile_option(parser: argparse.ArgumentParser) -> None:
    """`--profile native|laptop` for a benchmark's argument parser."""
    parser.add_argument(
        "--profile",
        choices=PROFILES,
        default="native",
        help="native: this machine as it is; laptop: as on an fp32 AVX2 laptop (vector ISA capped at AVX2 for "
        "ATen, oneDNN and MKL, so no native bf16 and --precision auto trains in fp32)",
    )


def profile_env(profile: str, environ: dict[str, str]) -> dict[str, str]:
    """`environ` with the profile's settings of the three libraries (native: none of them)."""
    if profile not in PROFILES:
        raise ValueError(f"--profile must be one of {', '.join(PROFILES)} (got {profile!r})")
    env = {key: value for key, value in environ.items() if key not in LAPTOP_ENV}
    return {**env, **LAPTOP_ENV} if profile == "laptop" else env


def enter_profile(profile: str) -> None:
    """Run this script in the profile's environment: start it again with that environment unless it already
    has it (the libraries read it when first used; restarting also covers any already loaded)."""
    env = profile_env(profile, dict(os.environ))
    if env != dict(os.environ):
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(sys.executable, [sys.executable, *sys.argv], env)


def cpu_name() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe(profile: str) -> dict[str, Any]:
    """What a benchmark's JSON says about its machine: profile, CPU, cores, the vector ISA torch uses,
    whether bf16 is native, what --precision auto trains and infers in, and torch's thread count."""
    import torch

    from seqtext.runtime import bf16_supported

    native = bf16_supported(torch.device("cpu"))
    return {
        "profile": profile,
        "cpu": cpu_name(),
        "cpus": os.cpu_count(),
        "isa": torch.backends.cpu.get_cpu_capability(),
        "bf16_native": native,
        "precision_auto": "bf16" if native else "fp32",
        "threads": torch.get_num_threads(),
        "env": {key: os.environ[key] for key in LAPTOP_ENV if key in os.environ},
    }


def machine_cell(machine: dict[str, Any], precision: str | None) -> str:
    """The machine column of a row: cores, ISA, native bf16 or not, threads, the precision used."""
    bf16 = "native bf16" if machine["bf16_native"] else "no native bf16"
    used = f", {precision}" if precision else ""
    return f"{machine['cpus']} CPU {machine['isa']}, {bf16}, {machine['threads']} threads{used}"


def row_cells(machine: dict[str, Any], precision: str | None) -> str:
    """The profile and machine cells of a row (TABLE_COLUMNS), without the outer bars."""
    return f"{machine['profile']} | {machine_cell(machine, precision)}"


def main(argv: list[str] | None = None) -> None:
    """Run COMMAND in the profile's environment (the demo, a training run, a test), as a benchmark runs."""
    parser = argparse.ArgumentParser(description="Run a command as on the profile's machine.")
    add_profile_option(parser)
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command and its arguments")
    args = parser.parse_args(argv)
    if not args.command:
        parser.error("give the command to run, e.g. sh scripts/demo.sh")
    sys.stdout.flush()
    try:
        os.execvpe(args.command[0], args.command, profile_env(args.profile, dict(os.environ)))
    except OSError as exc:
        parser.exit(127, f"error: {args.command[0]}: {exc.strerror}\n")


if __name__ == "__main__":
    main()
