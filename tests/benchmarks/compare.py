"""Before/after of a change: one benchmark run alternately on a base commit and on this checkout.

    .venv/bin/python tests/benchmarks/compare.py BASE [--runs 5] [--bench pipeline|core] [-- ARGS...]

On this shared 2-core machine one run of `bench_pipeline.py` moves by 10-20 % from one minute to
the next (the broker, the benchmark's clients and the worker share the cores with whatever the
host runs), so a lever of a few percent cannot be read off one run before and one after. This
script checks BASE out into a temporary git worktree, then runs the benchmark there and here in
turns (base, head, head, base, base, head ...), each tree's own script on its own code, so both
see the same minutes of the machine and neither always runs first. It prints every run, then per figure the median and range of each side
and head/base of the medians, and says when the two ranges overlap (the change is within the
noise of these runs). Since a round runs both sides back to back, it also counts the rounds
the head won and the chance of that many wins if the change did nothing (a sign test: 5 of 5
is 0.031): a shift the ranges hide can still show in every round. ARGS go to the benchmark
(default `--complaints 3000`).

Figures read from the benchmark's own output: `pipeline` gives events/s and the worker's CPU per
inbound event; `core` gives the functional core's µs per inbound event (bench_core.py). The
worktree is removed at the end.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

FIGURES = {
    "pipeline": {
        "events/s": (re.compile(r"^pipeline \(one worker.*?:\s+([\d.]+) events/s", re.M), "higher"),
        "worker CPU µs/event": (re.compile(r"^worker CPU:\s+([\d.]+) µs per inbound event", re.M), "lower"),
    },
    "core": {
        "core µs/event": (re.compile(r"^the core's work per inbound event:\s+([\d.]+) µs", re.M), "lower"),
    },
}
SCRIPTS = {"pipeline": "tests/benchmarks/bench_pipeline.py", "core": "tests/benchmarks/bench_core.py"}


def run_once(tree: Path, bench: str, args: list[str]) -> dict[str, float]:
    """One run of `bench` in `tree` (its own script and code); the figures it printed."""
    done = subprocess.run(
        [sys.executable, SCRIPTS[bench], *args],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        timeout=1800,
    )
    out = done.stdout + done.stderr
    figures = {}
    for name, (pattern, _) in FIGURES[bench].items():
        found = pattern.search(out)
        if found is None:
            tail = "\n".join(out.splitlines()[-15:])
            raise SystemExit(f"compare: no '{name}' in the output of {SCRIPTS[bench]} in {tree}:\n{tail}")
        figures[name] = float(found.group(1))
    return figures


def summary(bench: str, base: list[dict[str, float]], head: list[dict[str, float]]) -> list[str]:
    lines = []
    for name, (_, better) in FIGURES[bench].items():
        b, h = [r[name] for r in base], [r[name] for r in head]
        mb, mh = statistics.median(b), statistics.median(h)
        overlap = max(min(b), min(h)) <= min(max(b), max(h))
        verdict = "ranges overlap: within the noise of these runs" if overlap else "ranges apart"
        wins = sum((y > x) if better == "higher" else (y < x) for x, y in zip(b, h, strict=True))
        lines.append(
            f"{name:22} base median {mb:8.0f} ({min(b):.0f}-{max(b):.0f})   head median {mh:8.0f} "
            f"({min(h):.0f}-{max(h):.0f})   head/base {mh / mb:.3f} ({better} is better; {verdict})"
        )
        lines.append(
            f"{'':22} head better in {wins} of {len(b)} rounds (a round runs both back to back); "
            f"by chance alone {sign_test(wins, len(b)):.3f}"
        )
    return lines


def sign_test(wins: int, rounds: int) -> float:
    """The chance of at least `wins` better rounds of `rounds` if the change did nothing (each
    round a coin toss): the one-sided sign test, which asks nothing of the noise's shape."""
    return sum(math.comb(rounds, k) for k in range(wins, rounds + 1)) / 2**rounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base", help="the commit to compare this checkout against (a hash, tag or e.g. HEAD~3)")
    parser.add_argument("--runs", type=int, default=5, help="runs on each side, alternating (default 5)")
    parser.add_argument(
        "--bench", choices=sorted(SCRIPTS), default="pipeline", help="which benchmark (default pipeline)"
    )
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    parser.epilog = "Arguments after `--` go to the benchmark (default: --complaints 3000)."
    opts = parser.parse_args(argv[:split])
    args = argv[split + 1 :] or ["--complaints", "3000"]
    commit = subprocess.run(
        ["git", "rev-parse", "--verify", f"{opts.base}^{{commit}}"], cwd=REPO, capture_output=True, text=True
    )
    if commit.returncode != 0:
        raise SystemExit(f"compare: {opts.base!r} is not a commit of {REPO}")
    base_commit = commit.stdout.strip()
    with tempfile.TemporaryDirectory(prefix="ts-compare-") as tmp:
        tree = Path(tmp) / "base"
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(tree), base_commit], cwd=REPO, check=True)
        try:
            print(
                f"base {base_commit[:10]} ({tree}) against this checkout ({REPO}): {SCRIPTS[opts.bench]} {' '.join(args)}"
            )
            base: list[dict[str, float]] = []
            head: list[dict[str, float]] = []
            sides = [("base", tree, base), ("head", REPO, head)]
            for i in range(1, opts.runs + 1):
                for side, where, results in sides if i % 2 else sides[::-1]:  # base first, then head first ...
                    figures = run_once(where, opts.bench, args)
                    results.append(figures)
                    shown = ", ".join(f"{k} {v:.0f}" for k, v in figures.items())
                    print(f"run {i}/{opts.runs} {side}: {shown}", flush=True)
            print()
            for line in summary(opts.bench, base, head):
                print(line)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=REPO, check=False)


if __name__ == "__main__":
    main()
