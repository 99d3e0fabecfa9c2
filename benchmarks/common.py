"""What the benchmark scripts share: the machine line and timing a cold CLI process."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import date

from perfest.validate.calibrate import cpu_name  # imports no torch


def machine() -> str:
    """One line for RESULTS.md: date, Python, architecture, cores, CPU."""
    return (
        f"date {date.today()}  python {platform.python_version()}  {platform.machine()}  "
        f"{os.cpu_count()} cores  {cpu_name()}"
    )


def cold_process(args: list[str], runs: int) -> list[float]:
    """Wall-clock seconds of `perfest ARGS` as a fresh process, `runs` times (one warm-up)."""
    exe = shutil.which("perfest")
    cmd = ([exe] if exe else [sys.executable, "-m", "perfest.cli"]) + args
    subprocess.run(cmd, check=True, capture_output=True)  # warm the page cache
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return times
