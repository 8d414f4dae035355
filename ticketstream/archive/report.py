"""The KPI report as text, JSON or one self-contained HTML file (charts as embedded PNG), so a
quality team can mail it around without a server, a network or a second file."""

from __future__ import annotations

import base64
import html
import io
import json
from typing import Any

from ticketstream.archive.kpi import STAGES


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def _secs(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 3600:.1f} h" if value >= 3600 else f"{value / 60:.1f} min"


def as_json(report: dict[str, Any]) -> str:
    return json.dumps(report, ensure_ascii=False, indent=2, default=str)


def _summary_lines(r: dict[str, Any]) -> list[tuple[str, str]]:
    lines = [("complaints received", str(r["volume"]))]
    for stage in STAGES:
        if stage in r["on_time"]:
            o = r["on_time"][stage]
            lines.append(
                (
                    f"on-time rate {stage}",
                    f"{_pct(o['rate'])} ({o['on_time']}/{o['judged']}, "
                    f"{o['breached']} breached; target {_pct(o['target'])})",
                )
            )
    for name, key in (("first response", "first_response_seconds"), ("resolution", "resolution_seconds")):
        d = r[key]
        lines.append(
            (
                f"{name} time p50 / p90 / p99",
                f"{_secs(d['p50'])} / {_secs(d['p90'])} / {_secs(d['p99'])} ({d['count']} tickets)",
            )
        )
    s = r["satisfaction"]
    lines += [
        ("repeat rate", _pct(r["repeat_rate"])),
        ("closed-loop rate", _pct(r["closed_loop_rate"])),
        ("first-handling completion rate", _pct(r["first_handling_completion_rate"])),
        (
            "satisfaction",
            f"{_pct(s['rate'])} satisfied of {s['surveys']} surveys, index "
            f"{'-' if s['index'] is None else format(s['index'], '.1f')} (target {_pct(s['target'])})",
        ),
    ]
    return lines


def as_text(r: dict[str, Any]) -> str:
    out = [f"KPI report {r['since']} .. {r['until']}", ""]
    width = max(len(k) for k, _ in _summary_lines(r))
    out += [f"  {k:<{width}}  {v}" for k, v in _summary_lines(r)]
    out += ["", f"  tickets with a breach: {r['breached_tickets']}", f"  backlog at the end: {r['backlog_total']}"]
    for team, grades in r["backlog"].items():
        out.append(f"    {team:<16} " + "  ".join(f"{g} {n}" for g, n in grades.items()))
    for name, counts in r["volume_by"].items():
        out += ["", f"  volume by {name}:"] + [f"    {k:<32} {v}" for k, v in list(counts.items())[:20]]
    inc = r["incidents"]
    out += ["", f"  mass incidents opened: {inc['opened']} ({inc['linked_tickets']} linked tickets)"]
    out += [f"    {k}  {v}" for k, v in inc["by_city_category"].items()]
    if r.get("groups"):
        out += [
            "",
            f"  by {r['by']}:",
            f"    {'group':<28} {'volume':>7} {'response':>9} {'resolution':>10} "
            f"{'closed':>7} {'repeat':>7} {'satisfied':>9}",
        ]
        for name, g in r["groups"].items():
            out.append(
                f"    {name[:28]:<28} {g['volume']:>7} {_pct(g['on_time'].get('response', {}).get('rate')):>9} "
                f"{_pct(g['on_time'].get('resolution', {}).get('rate')):>10} {_pct(g['closed_loop_rate']):>7} "
                f"{_pct(g['repeat_rate']):>7} {_pct(g['satisfaction']['rate']):>9}"
            )
    return "\n".join(out) + "\n"


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def charts(r: dict[str, Any]) -> dict[str, str]:
    """The report's charts as PNG data URLs (matplotlib's Agg backend: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["font.sans-serif"] = ["Noto Sans CJK SC", "WenQuanYi Zen Hei", "DejaVu Sans"]
    out: dict[str, str] = {}
    days = [d["day"] for d in r["trend"]]
    if days:
        fig, ax = plt.subplots(figsize=(8, 3))
        ax.plot(days, [d["volume"] for d in r["trend"]], marker="o")
        ax.set_title("Complaints received per day")
        ax.tick_params(axis="x", rotation=45)
        out["volume trend"] = _png(fig)
        fig, ax = plt.subplots(figsize=(8, 3))
        for stage in ("response", "resolution"):
            ys = [
                100 * d["on_time"][stage] if d["on_time"].get(stage) is not None else float("nan") for d in r["trend"]
            ]
            ax.plot(days, ys, marker="o", label=stage)
        ax.axhline(95, color="red", linestyle="--", label="target 95 %")
        ax.set_ylim(0, 105)
        ax.set_title("On-time rate per day (%)")
        ax.legend()
        ax.tick_params(axis="x", rotation=45)
        out["on-time trend"] = _png(fig)
    if r["on_time"]:
        fig, ax = plt.subplots(figsize=(6, 3))
        stages = list(r["on_time"])
        ax.bar(stages, [100 * (r["on_time"][s]["rate"] or 0) for s in stages], color="#4a7ab5")
        ax.axhline(95, color="red", linestyle="--")
        ax.set_ylim(0, 105)
        ax.set_title("On-time rate per stage (%) against the 95 % target")
        out["on-time by stage"] = _png(fig)
    for name in ("category", "channel"):
        counts = r["volume_by"][name]
        if counts:
            fig, ax = plt.subplots(figsize=(7, 0.3 * len(counts) + 1))
            ax.barh(list(counts)[::-1], list(counts.values())[::-1], color="#6a9f58")
            ax.set_title(f"Volume by {name}")
            out[f"volume by {name}"] = _png(fig)
    if r["backlog"]:
        fig, ax = plt.subplots(figsize=(7, 3))
        grades = sorted({g for gs in r["backlog"].values() for g in gs})
        bottom = [0] * len(r["backlog"])
        for grade in grades:
            values = [r["backlog"][team].get(grade, 0) for team in r["backlog"]]
            ax.bar(list(r["backlog"]), values, bottom=bottom, label=grade)
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        ax.legend()
        ax.tick_params(axis="x", rotation=30)
        ax.set_title("Backlog by team and grade")
        out["backlog"] = _png(fig)
    return out


def as_html(r: dict[str, Any]) -> str:
    esc = html.escape
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in _summary_lines(r))
    images = "".join(
        f"<figure><img alt='{esc(name)}' src='{src}'><figcaption>{esc(name)}</figcaption></figure>"
        for name, src in charts(r).items()
    )
    groups = ""
    if r.get("groups"):
        head = (
            "<tr><th>group</th><th>volume</th><th>response</th><th>resolution</th><th>closed-loop</th>"
            "<th>repeat</th><th>satisfied</th></tr>"
        )
        body = "".join(
            f"<tr><td>{esc(n)}</td><td>{g['volume']}</td><td>{_pct(g['on_time'].get('response', {}).get('rate'))}</td>"
            f"<td>{_pct(g['on_time'].get('resolution', {}).get('rate'))}</td><td>{_pct(g['closed_loop_rate'])}</td>"
            f"<td>{_pct(g['repeat_rate'])}</td><td>{_pct(g['satisfaction']['rate'])}</td></tr>"
            for n, g in r["groups"].items()
        )
        groups = f"<h2>By {esc(r['by'])}</h2><table>{head}{body}</table>"
    incidents = "".join(f"<li>{esc(k)}: {v}</li>" for k, v in r["incidents"]["by_city_category"].items())
    return f"""<!DOCTYPE html>
<html lang="zh"><head><meta charset="utf-8"><title>ticketstream KPI report {esc(r["since"])} .. {esc(r["until"])}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:60em}}table{{border-collapse:collapse}}
th,td{{border:1px solid #ccc;padding:.3em .6em;text-align:left}}figure{{display:inline-block;margin:1em}}</style></head>
<body><h1>KPI report</h1><p>{esc(r["since"])} .. {esc(r["until"])} (DOMAIN §9)</p>
<table>{rows}<tr><th>tickets with a breach</th><td>{r["breached_tickets"]}</td></tr>
<tr><th>backlog at the end</th><td>{r["backlog_total"]}</td></tr></table>
{groups}<h2>Charts</h2>{images}
<h2>Mass incidents</h2><p>{r["incidents"]["opened"]} opened, {r["incidents"]["linked_tickets"]} linked tickets</p><ul>{incidents}</ul>
</body></html>
"""
