"""Run every fxnet benchmark in one command: `python bench/run.py [--quick]`.

Each benchmark prints its own ratios measured in one run (real-time factors, speed-ups,
peak memory, fidelity). --quick uses shorter files.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    quick = "--quick" in sys.argv[1:]
    runs = [
        ["bench_engine.py"] + (["--minutes", "2", "--long-minutes", "12"] if quick else []),
        ["bench_effects.py"],
        ["bench_apply.py"] + (["--minutes", "2"] if quick else []),
        ["bench_models.py"] + (["--repeats", "1", "--threads", "2"] if quick else []),
        ["bench_eval.py"],
        # A-SPADE is slow: the full declipping comparison runs it on two clips only.
        ["bench_remove.py", "--aspade-clips", "2"] + (["--quick"] if quick else []),
    ]
    failed = []
    for args in runs:
        print(f"\n=== {' '.join(args)}", flush=True)
        if subprocess.run([sys.executable, str(HERE / args[0]), *args[1:]]).returncode:
            failed.append(args[0])
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
