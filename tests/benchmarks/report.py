"""The benchmark report: run the benchmarks once on this machine and write docs/benchmarks.md with figures.

    .venv/bin/python tests/benchmarks/report.py                 # `make bench`: about 15-20 min on 2 cores
    .venv/bin/python tests/benchmarks/report.py --quick         # small sizes, a few minutes: the format only
    .venv/bin/python tests/benchmarks/report.py --tickets 10000 100000 1000000 --backlog 200000   # bigger
    .venv/bin/python tests/benchmarks/report.py --render-only   # redraw from the JSON of the last run

Starts one embedded Kafka broker for all of them, runs each benchmark script as its own process
with `--json` (their printed text goes to the terminal as usual), keeps the JSON in
docs/benchmarks/results/, draws the figures with matplotlib (Agg: no display) into
docs/benchmarks/ and writes docs/benchmarks.md: per figure the image, a table of the numbers, how
they were taken (command, machine, Python, Kafka, date, load) and the claim, which is always a
ratio against a baseline measured in the same run (absolute speeds on a shared machine vary by a
third from hour to hour). The SLA engine's recorded 100,000 and 1,000,000-ticket figures are
taken from README.md's table and drawn apart, marked as recorded earlier and not from this run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

BENCH = Path("tests/benchmarks")
RECORDED_HEADER = (
    "| open tickets | breach latency p50 | p99 | max | RSS per open ticket | recovery: serving / firing again |"
)


def recorded_sla(readme: str) -> list[dict[str, float]]:
    """The SLA engine's figures recorded in README.md's table (one worker, RocksDB, 2 cores)."""
    lines = readme.splitlines()
    if RECORDED_HEADER not in lines:
        raise ValueError(f"README.md has no table headed {RECORDED_HEADER!r}")
    rows = []
    for line in lines[lines.index(RECORDED_HEADER) + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]

        def num(text: str) -> float:
            return float(re.sub(r"[^0-9.]", "", text))

        serving, firing = cells[5].split("/")
        rows.append(
            {
                "tickets": num(cells[0]),
                "latency_p50_s": num(cells[1]),
                "latency_p99_s": num(cells[2]),
                "latency_max_s": num(cells[3]),
                "rss_bytes_per_ticket": num(cells[4]),
                "recovery_serving_s": num(serving),
                "recovery_firing_s": num(firing),
            }
        )
    return rows


# ---------------------------------------------------------------- running


def run_benchmarks(args: argparse.Namespace, results: Path) -> dict[str, Any]:
    """Every benchmark of the report, each a process of its own writing its JSON into `results`."""
    from ticketstream.workers import embedded_kafka

    results.mkdir(parents=True, exist_ok=True)
    for old in results.glob("*.json"):
        old.unlink()
    tmp = Path(tempfile.mkdtemp(prefix="ts-bench-report-"))
    bootstrap = args.bootstrap
    if not bootstrap:
        print("starting the embedded Kafka broker ...", flush=True)
        bootstrap = embedded_kafka.start(tmp / "kafka").bootstrap_servers
    steps: list[tuple[str, list[str]]] = [
        ("triage", ["bench_triage.py", "--complaints", str(args.triage_complaints), "--repeat", "3"]),
        (
            "intake",
            ["bench_intake.py", "--events", str(args.intake_events), "--repeat", "2", "--bootstrap", bootstrap],
        ),
        (
            "pipeline",
            [
                "bench_pipeline.py",
                "--complaints",
                str(args.complaints),
                "--workers",
                *[str(w) for w in args.workers],
                "--backlog",
                str(args.backlog),
                "--bootstrap",
                bootstrap,
            ],
        ),
        (
            "pipeline-complaints",
            [
                "bench_pipeline.py",
                "--complaints",
                str(args.complaints_only),
                "--complaints-only",
                "--bootstrap",
                bootstrap,
            ],
        ),
        *[
            (
                f"sla-{tickets}",
                [
                    "bench_sla.py",
                    "--tickets",
                    str(tickets),
                    "--probes",
                    str(args.probes),
                    "--bootstrap",
                    bootstrap,
                ],
            )
            for tickets in args.tickets
        ],
    ]
    started = time.monotonic()
    try:
        for name, argv in steps:
            print(f"\n== {name}: {shlex.join(argv)}  ({(time.monotonic() - started) / 60:.1f} min so far)", flush=True)
            out = results / f"{name}.json"
            subprocess.run([sys.executable, str(BENCH / argv[0]), *argv[1:], "--json", str(out)], cwd=REPO, check=True)
    finally:
        if not args.bootstrap:
            embedded_kafka.stop(tmp / "kafka")
    print(f"\nall benchmarks took {(time.monotonic() - started) / 60:.1f} min", flush=True)
    return {
        "kafka": "external broker (version not checked)"
        if args.bootstrap
        else f"Apache Kafka {embedded_kafka.KAFKA_VERSION} (embedded, KRaft, one broker)",
        "minutes": (time.monotonic() - started) / 60,
    }


def load_results(results: Path) -> dict[str, Any]:
    """The JSON of one run: {"triage": .., "intake": .., "pipeline": .., "pipeline-complaints": ..,
    "sla": [.. by tickets]}."""
    out: dict[str, Any] = {"sla": []}
    for path in sorted(results.glob("*.json")):
        if path.name == "run.json":
            out["run"] = json.loads(path.read_text())
            continue
        record = json.loads(path.read_text())
        if record["benchmark"] == "sla":
            out["sla"].append(record)
        else:
            out[record["benchmark"]] = record
    out["sla"].sort(key=lambda r: r["params"]["tickets"])
    return out


# ---------------------------------------------------------------- rendering


def _fmt(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def _how(record: dict[str, Any], kafka: str | None = None) -> str:
    """How a benchmark's numbers were taken (its command without the run's broker address and JSON path)."""
    m = record["machine"]
    command = re.sub(r" --(bootstrap|json) \S+", "", record["command"])
    load = ", ".join(f"{v:.1f}" for v in m["load_average"])
    where = f"{m['cpus']} CPUs ({m['machine']}), Python {m['python']}"
    if kafka:
        where += f", {kafka}"
    return f"How it was taken: `{command}` on {where}, {m['date']} (load average {load} at the end)."


def _against_tickets(
    this: list[dict[str, Any]],
    recorded: list[dict[str, Any]],
    series: tuple[tuple[str, str, str], ...],
    ylabel: str,
    title: str,
) -> tuple[Any, Any]:
    """One figure of SLA figures against open tickets (log scale): each series (key, label,
    colour) from this run as solid lines, and from the recorded figures as hollow dashed ones."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    for key, label, color in series:
        if this:
            ax.plot(
                [r["tickets"] for r in this], [r[key] for r in this], "o-", color=color, label=f"{label} (this run)"
            )
        if recorded:
            ax.plot(
                [r["tickets"] for r in recorded],
                [r[key] for r in recorded],
                "s--",
                mfc="none",
                color=color,
                label=f"{label} (recorded earlier)",
            )
    ax.set_xscale("log")
    ax.set_ylim(bottom=0)
    ax.set_xlabel("open tickets on one worker")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return fig, ax


def render(data: dict[str, Any], recorded: list[dict[str, float]], out: Path, *, quick: bool = False) -> Path:
    """docs/benchmarks.md and its PNG figures from one run's JSON (and the recorded SLA figures)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = out / "benchmarks"
    figures.mkdir(parents=True, exist_ok=True)
    run = data.get("run", {})
    kafka = run.get("kafka", "Apache Kafka (version not recorded)")

    def save(fig: Any, name: str) -> str:
        fig.tight_layout()
        fig.savefig(figures / name, dpi=90, metadata={"Software": None})
        plt.close(fig)
        return f"benchmarks/{name}"

    md: list[str] = ["# Benchmarks", ""]
    if quick:
        md += [
            "> **Small run (`report.py --quick`)**: this page shows the report's format; its sizes are too",
            "> small for the numbers to mean much. `make bench` regenerates it at full sizes.",
            "",
        ]
    dates = sorted(r["machine"]["date"] for r in _records(data))
    cpus = sorted({str(r["machine"]["cpus"]) for r in _records(data)})
    pythons = sorted({r["machine"]["python"] for r in _records(data)})
    md += [
        f"Generated by `make bench` (`tests/benchmarks/report.py`) from one run on one machine: "
        f"{', '.join(cpus)} CPUs, Python {', '.join(pythons)}, {kafka}, "
        f"{dates[0] if dates else '?'} to {dates[-1] if dates else '?'}"
        + (f" ({run['minutes']:.0f} min)" if "minutes" in run else "")
        + ". Every benchmark runs its baseline in the same run on the same broker, and the claims are",
        "those ratios: absolute speeds on a shared 2-core machine vary by a third from hour to hour.",
        "The raw numbers are in [benchmarks/results/](benchmarks/results/).",
        "",
    ]

    pipeline = data.get("pipeline")
    if pipeline:
        res = pipeline["results"]
        runs = res["runs"]
        base = res["baseline_per_s"]
        fig, axes = plt.subplots(1, 2 if res["backlog"] else 1, figsize=(9 if res["backlog"] else 5, 3.2))
        axes = list(axes) if res["backlog"] else [axes]
        labels = [f"{r['workers']} worker{'s' if r['workers'] > 1 else ''}" for r in runs]
        axes[0].bar(labels, [r["events_per_s"] for r in runs], color="tab:blue")
        axes[0].set_ylabel("inbound events/s until tickets.state")
        axes[0].set_title("End-to-end throughput")
        axes[0].set_ylim(0, max(r["events_per_s"] for r in runs) * 1.15)
        for i, r in enumerate(runs):
            axes[0].annotate(
                f"{r['events_per_s'] / runs[0]['events_per_s']:.2f}x", (i, r["events_per_s"]), ha="center", va="bottom"
            )
        if res["backlog"]:
            b = res["backlog"]
            axes[1].bar(
                [f"{x['workers']} worker{'s' if x['workers'] > 1 else ''}" for x in b],
                [x["seconds"] for x in b],
                color="tab:orange",
            )
            axes[1].set_ylabel("seconds to committed end offsets")
            axes[1].set_title(f"Catch-up on a {_fmt(b[0]['events'])}-event backlog")
        md += ["## Scaling: 1 vs 2 workers on the same topics", "", f"![scaling]({save(fig, 'scaling.png')})", ""]
        md += [
            "| workers | events/s | complaints/s | seconds | ratio to 1 worker | ratio to bare loop | worker CPU per event |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in runs:
            md.append(
                f"| {r['workers']} | {_fmt(r['events_per_s'])} | {_fmt(r['complaints_per_s'])} | {r['seconds']:.1f} | "
                f"**{r['events_per_s'] / runs[0]['events_per_s']:.2f}** | {r['ratio_to_baseline']:.3f} | {_fmt(r['cpu_us_per_event'])} µs |"
            )
        md += ["", f"Bare aiokafka consume-and-produce loop, same broker, same run: {_fmt(base)} events/s.", ""]
        if res["backlog"]:
            md += [
                "| workers | backlog (events) | catch-up | events/s | all workers answering after | ratio to 1 worker (time) |",
                "|---|---|---|---|---|---|",
            ]
            for x in res["backlog"]:
                md.append(
                    f"| {x['workers']} | {_fmt(x['events'])} | {x['seconds']:.1f} s | {_fmt(x['events'] / x['seconds'])} | "
                    f"{x['ready_seconds']:.1f} s | **{x['seconds'] / res['backlog'][0]['seconds']:.2f}** |"
                )
            md.append("")
            if len(res["backlog"]) > 1:
                first, last = res["backlog"][0], res["backlog"][-1]
                md += [
                    f"**Claim: {last['workers']} workers catch up on a {_fmt(last['events'])}-event backlog in "
                    f"{last['seconds'] / first['seconds']:.2f} of the time {first['workers']} worker"
                    f"{'s' if first['workers'] > 1 else ''} take{'' if first['workers'] > 1 else 's'}.**",
                    "",
                ]
        p = pipeline["params"]
        md += [
            f"{_fmt(p['complaints'])} complaints with their lifecycle events ({_fmt(p['events'])} inbound events, "
            f"{'aged a week' if p['aged'] else 'fresh timestamps'}), {p['partitions']} partitions per topic. "
            "Throughput: the workers (real `ticketstream worker` processes in one consumer group) are started "
            "and the group is stable before the traffic is sent; timed from the first ticket state to the last "
            "ticket applied in `tickets.state`. Catch-up: the backlog is on `tickets.inbound` before the workers "
            "start; timed from their start (including the group forming) until the group's committed offsets "
            "reach the end offsets of every topic it consumes (Faust commits every few seconds).",
            "",
        ]
        if len(runs) > 1:
            ratio = runs[1]["events_per_s"] / runs[0]["events_per_s"]
            cpus = pipeline["machine"]["cpus"]
            load = pipeline["machine"]["load_average"][1]
            md += [
                f"**Claim: {runs[1]['workers']} workers process {ratio:.2f}x the events/s of one on this machine.** "
                + ("It is not 2x" if ratio < 1.8 else "Do not expect that elsewhere")
                + f" because this machine has {cpus} cores shared by the broker, "
                "the producer sending the traffic, the reader checking `tickets.state` and the workers: one worker "
                "already keeps a core busy, and the broker (a JVM) and the benchmark's own clients take much of "
                "the other"
                + (
                    "; below 1, the second process costs more than it adds (each worker runs every agent with "
                    "its own Faust and Kafka clients, and they take turns on the same cores)"
                    if ratio < 1
                    else ""
                )
                + ". Two workers only add throughput where they get cores of their own: on separate "
                "machines, up to the partition count."
                + (
                    f" The load average ({load:.1f} over 5 minutes on {cpus} cores) says other work shared the "
                    "machine: two processes then also win a larger share of the cores from it than one, which "
                    "flatters the ratio."
                    if load > cpus
                    else ""
                ),
                "",
            ]
        md += [_how(pipeline, kafka), ""]

    alone = data.get("pipeline-complaints")
    if alone:
        r, p = alone["results"]["runs"][0], alone["params"]
        who = "one worker" if r["workers"] == 1 else f"{r['workers']} workers"
        produced = sum(r["produced_per_event"].values())
        md += [
            f"## Fresh complaints alone: {who}",
            "",
            "| complaints | seconds | complaints/s | ratio to bare loop | worker CPU per complaint "
            "| produced / consumed per complaint |",
            "|---|---|---|---|---|---|",
            f"| {_fmt(p['complaints'])} | {r['seconds']:.1f} | {_fmt(r['complaints_per_s'])} | "
            f"{r['ratio_to_baseline']:.3f} | {_fmt(r['cpu_us_per_event'])} µs | {produced:.2f} / "
            f"{r['consumed_per_event']:.2f} |",
            "",
            f"Bare aiokafka consume-and-produce loop over the same messages, same run: "
            f"{_fmt(alone['results']['baseline_per_s'])} events/s.",
            "",
            f"**Claim: {who} finish{'es' if r['workers'] == 1 else ''} {_fmt(r['complaints_per_s'])} fresh "
            f"complaints a second end to end, {r['ratio_to_baseline']:.3f} of the bare loop** (the throughput "
            "issue's goal: 1,000 fresh complaints a second on one worker, 0.04 of the bare loop). Each complaint "
            "is validated and de-duplicated, triaged against its customer's history, routed to its team's "
            "queue, given its clocks, fed to incident detection and saved as its ticket's state, all in the "
            "step of the ticket agent that accepts it; its history entry goes to every worker's copy "
            "(`customers.history`). A complaint is the heaviest input: its triage and its triage record, queue "
            "copy and history entry come on top of what a lifecycle event costs. The worker's group is stable "
            "before the complaints are sent; timed from the first ticket state until every ticket's triage is "
            "in `tickets.state`.",
            "",
            _how(alone, kafka),
            "",
        ]

    sla = data.get("sla") or []
    if sla or recorded:
        this = [r["results"] | {"tickets": r["params"]["tickets"]} for r in sla]
        fig, ax = _against_tickets(
            this,
            recorded,
            (("latency_p50_s", "p50", "tab:blue"), ("latency_p99_s", "p99", "tab:red")),
            "breach emitted - due (s)",
            "Breach latency against open tickets",
        )
        if sla:
            ax.axhline(sla[0]["results"]["tick_seconds"], color="grey", linestyle=":", label="tick interval (baseline)")
        ax.legend(fontsize=8)
        md += [
            "## SLA engine: breach latency against open tickets",
            "",
            f"![breach latency]({save(fig, 'sla_latency.png')})",
            "",
        ]
        md += [
            "| open tickets | source | p50 | p99 | max | p99 / tick | RSS per open ticket |",
            "|---|---|---|---|---|---|---|",
        ]
        tick = sla[0]["results"]["tick_seconds"] if sla else 0.25
        for r in this:
            md.append(
                f"| {_fmt(r['tickets'])} | this run | {r['latency_p50_s']:.3f} s | {r['latency_p99_s']:.3f} s | "
                f"{r['latency_max_s']:.3f} s | **{r['latency_p99_s'] / r['tick_seconds']:.2f}** | {_fmt(r['rss_bytes_per_ticket'])} B |"
            )
        for r in recorded:
            md.append(
                f"| {_fmt(r['tickets'])} | *recorded earlier (README)* | {r['latency_p50_s']:.3f} s | {r['latency_p99_s']:.3f} s | "
                f"{r['latency_max_s']:.3f} s | {r['latency_p99_s'] / tick:.2f} | {_fmt(r['rss_bytes_per_ticket'])} B |"
            )
        md += [""]
        if len(this) > 1:
            lo, hi = this[0], this[-1]
            md += [
                f"**Claim: {hi['tickets'] / lo['tickets']:.0f}x the open tickets ({_fmt(lo['tickets'])} → {_fmt(hi['tickets'])}) "
                f"change the breach latency's p99 by {hi['latency_p99_s'] / lo['latency_p99_s']:.2f}x**; the largest p99 is "
                f"{max(r['latency_p99_s'] / r['tick_seconds'] for r in this):.1f} tick intervals (the tick is the floor of any "
                "timer-driven latency; goal: p99 ≤ 1 s).",
                "",
            ]
        md += [
            "One worker (RocksDB store, 12 partitions) holds the open tickets (sent as complaints through "
            "the whole pipeline, each of a customer of its own; the rows recorded earlier entered them as triage "
            f"records on `tickets.triaged`); {sla[0]['params']['probes'] if sla else 300} probe complaints sent through the whole pipeline breach 10-40 s later; "
            "latency is the Kafka timestamp of the breach record minus the breach instant. The rows marked "
            "*recorded earlier* are README.md's table (`bench_sla.py --tickets 100000` and `--tickets 1000000 "
            "--probes 300` on this project's 2-core machine), not from this run; they are drawn with hollow markers.",
            "",
        ]
        if sla:
            md += [*[_how(r, kafka) + "  " for r in sla], ""]

        fig, ax = _against_tickets(
            this,
            recorded,
            (
                ("recovery_serving_s", "serving a ticket", "tab:green"),
                ("recovery_firing_s", "firing again", "tab:purple"),
            ),
            "seconds after SIGKILL + restart",
            "Recovery against open tickets",
        )
        ax.legend(fontsize=8)
        md += [
            "## SLA engine: recovery time against open tickets",
            "",
            f"![recovery]({save(fig, 'sla_recovery.png')})",
            "",
        ]
        md += ["| open tickets | source | serving again | firing again (deadline index rebuilt) |", "|---|---|---|---|"]
        for r in this:
            md.append(
                f"| {_fmt(r['tickets'])} | this run | {r['recovery_serving_s']:.1f} s | {r['recovery_firing_s']:.1f} s |"
            )
        for r in recorded:
            md.append(
                f"| {_fmt(r['tickets'])} | *recorded earlier (README)* | {r['recovery_serving_s']:.1f} s | {r['recovery_firing_s']:.1f} s |"
            )
        md += [""]
        if len(this) > 1:
            lo, hi = this[0], this[-1]
            md += [
                f"**Claim: with {hi['tickets'] / lo['tickets']:.0f}x the open tickets, firing again after a crash takes "
                f"{hi['recovery_firing_s'] / lo['recovery_firing_s']:.2f}x as long**: recovery is mostly a fixed cost (Faust's start and the "
                "changelog's tail) plus one pass over the ticket table (goal: < 30 s).",
                "",
            ]
        md += [
            "The worker is killed (SIGKILL) after the latency probes and a new one started on the same data "
            "directory; timed until it serves a loaded ticket at `/tickets/{id}` and until every open ticket is "
            "back in its deadline index. Same runs as above.",
            "",
        ]

    intake = data.get("intake")
    if intake:
        res = intake["results"]
        fig, ax = plt.subplots(figsize=(5, 3.2))
        ax.bar(
            ["bare aiokafka loop", "intake (whole worker)"],
            [res["median_baseline_per_s"], res["median_intake_per_s"]],
            color=["tab:grey", "tab:blue"],
        )
        ax.annotate(f"{res['ratio']:.3f}x", (1, res["median_intake_per_s"]), ha="center", va="bottom")
        ax.set_ylabel("events/s (median)")
        ax.set_title(f"Intake against the bare loop: {res['ratio']:.3f}")
        md += ["## Intake throughput against the bare aiokafka loop", "", f"![intake]({save(fig, 'intake.png')})", ""]
        md += ["| run | bare loop events/s | intake events/s | ratio |", "|---|---|---|---|"]
        for i, (b, v) in enumerate(zip(res["baseline_per_s"], res["intake_per_s"], strict=True), 1):
            md.append(f"| {i} | {_fmt(b)} | {_fmt(v)} | {v / b:.3f} |")
        md.append(
            f"| median | {_fmt(res['median_baseline_per_s'])} | {_fmt(res['median_intake_per_s'])} | **{res['ratio']:.3f}** |"
        )
        md += [
            "",
            f"**Claim: a worker's intake forwards {res['ratio']:.3f} of the events/s of a bare aiokafka "
            "consume-and-produce loop** over the same pre-loaded messages on the same broker (it validates, "
            "de-duplicates through a changelogged table and forwards, and the whole worker with all its "
            "agents runs in the one process).",
            "",
            _how(intake, kafka),
            "",
        ]

    triage = data.get("triage")
    if triage:
        res = triage["results"]
        fig, ax = plt.subplots(figsize=(5.5, 3.2))
        ratios = [1.0, res["ratio"], res["ratio_rules_only"]]
        ax.bar(
            ["pydantic validation\n(baseline)", "triage core", "phrase rules alone"],
            ratios,
            color=["tab:grey", "tab:blue", "tab:cyan"],
        )
        for i, ratio in enumerate(ratios):
            ax.annotate(f"{ratio:.3f}", (i, ratio), ha="center", va="bottom")
        ax.axhline(0.05, color="red", linestyle="--", label="goal 0.05")
        ax.set_ylim(0, 1.15)
        ax.set_ylabel("complaints/s relative to the baseline")
        ax.set_title(f"Triage core against its baseline: {res['ratio']:.3f}")
        ax.legend(fontsize=8)
        md += ["## Triage core against its baseline", "", f"![triage]({save(fig, 'triage.png')})", ""]
        md += ["| | complaints/s (median) | µs per complaint | ratio to baseline |", "|---|---|---|---|"]
        for label, key, ratio in (
            ("pydantic validation of the event (baseline)", "median_baseline_per_s", 1.0),
            ("triage core (model + rules, grade, route, record)", "median_triage_per_s", res["ratio"]),
            ("phrase rules alone (no model)", "median_rules_only_per_s", res["ratio_rules_only"]),
        ):
            md.append(f"| {label} | {_fmt(res[key])} | {1e6 / res[key]:.1f} | {ratio:.3f} |")
        md += [
            "",
            f"**Claim: the triage core runs at {res['ratio']:.3f} of the speed of merely validating the same "
            f"events** (goal ≥ 0.05), {res['ratio_rules_only']:.3f} with the phrase rules alone; "
            f"{_fmt(triage['params']['complaints'])} simulator complaints, {triage['params']['repeat']} repeats, one core.",
            "",
            _how(triage),
            "",
        ]

    md += [
        "## Regenerating",
        "",
        "```bash",
        "make bench                                          # this page, at the sizes above",
        ".venv/bin/python tests/benchmarks/report.py --help  # sizes (--tickets 10000 100000 1000000 ...)",
        "```",
        "",
        "Each benchmark also runs on its own and prints its numbers (README.md, Benchmarks).",
        "",
    ]
    page = out / "benchmarks.md"
    page.write_text("\n".join(md))
    return page


def _records(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [data[k] for k in ("pipeline", "pipeline-complaints", "intake", "triage") if data.get(k)] + list(
        data.get("sla") or []
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "docs", help="where benchmarks.md and benchmarks/ go")
    parser.add_argument("--quick", action="store_true", help="small sizes (a few minutes): the format, not the numbers")
    parser.add_argument("--render-only", action="store_true", help="redraw from the JSON of the last run")
    parser.add_argument("--tickets", type=int, nargs="+", default=[10_000, 100_000], help="open tickets (bench_sla.py)")
    parser.add_argument("--probes", type=int, default=300)
    parser.add_argument("--complaints", type=int, default=4000, help="bench_pipeline.py throughput traffic")
    parser.add_argument(
        "--complaints-only", type=int, default=8000, help="bench_pipeline.py --complaints-only: fresh complaints alone"
    )
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--backlog", type=int, default=100_000, help="events pre-loaded for the catch-up time")
    parser.add_argument("--intake-events", type=int, default=20_000)
    parser.add_argument("--triage-complaints", type=int, default=10_000)
    parser.add_argument("--bootstrap", help="an existing Kafka; default: start the embedded broker")
    args = parser.parse_args()
    if args.quick:
        args.tickets, args.probes, args.complaints, args.complaints_only = [2000, 10_000], 60, 500, 500
        args.backlog, args.intake_events, args.triage_complaints = 5000, 3000, 500
    results = args.out / "benchmarks" / "results"
    if not args.render_only:
        run = run_benchmarks(args, results)
        run["quick"] = args.quick
        run["cpus"] = os.cpu_count()
        (results / "run.json").write_text(json.dumps(run, indent=2) + "\n")
    data = load_results(results)
    quick = bool(data.get("run", {}).get("quick"))
    page = render(data, recorded_sla((REPO / "README.md").read_text()), args.out, quick=quick)
    print(f"wrote {page.relative_to(REPO) if page.is_relative_to(REPO) else page} and its figures", flush=True)


if __name__ == "__main__":
    main()
