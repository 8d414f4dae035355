"""Triage quality on labelled complaints (`ticketstream triage evaluate`, `eval_triage.py`).

A labelled line is a complaint (a `complaint.received` event, or an object with `content` and
optionally `ticket_id`, `occurred_at`, `channel`, `tier`, `customer_id`, `province`, `city`,
`affected_users`) with the answer a person gave: `category` and/or `grade` (the final grade,
modifiers included). Lines are triaged in file order with the workers' engine, so a customer's
earlier lines count as history (二次投訴) as they would live.

Besides accuracy, the report checks calibration: of the categories decided with a reported
confidence of at least 0.9, how many were right (they should be at least 90 %).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ticketstream.schemas.events import Category, Event, Grade
from ticketstream.schemas.tickets import TriagedTicket
from ticketstream.triage.engine import HistoryEntry, TriageEngine

CONFIDENT = 0.9


def complaint_event(obj: Any, number: int) -> Event:
    """A `complaint.received` event from a JSON line: the event itself, or a bare complaint object."""
    if not isinstance(obj, dict):
        raise ValueError("expected a JSON object")
    if "type" in obj:
        event = Event.model_validate(obj)
        if event.type != "complaint.received":
            raise ValueError(f"only complaint.received events can be classified, not {event.type}")
        return event
    if "content" not in obj:
        raise ValueError("expected a complaint.received event or an object with 'content'")
    ticket = str(obj.get("ticket_id") or f"LINE-{number}")
    return Event.model_validate(
        {
            "event_id": f"{ticket}:received",
            "type": "complaint.received",
            "ticket_id": ticket,
            "occurred_at": obj.get("occurred_at") or datetime.now(UTC).isoformat(),
            "schema_version": 1,
            "data": {
                "channel": obj.get("channel") or "other",
                "customer": {
                    "id": str(obj.get("customer_id") or f"anonymous-{ticket}"),
                    "tier": obj.get("tier") or "ordinary",
                },
                "region": {"province": obj.get("province") or "unknown", "city": obj.get("city") or "unknown"},
                "content": obj["content"],
                **({"affected_users": obj["affected_users"]} if obj.get("affected_users") else {}),
            },
        }
    )


@dataclass
class Report:
    n: int = 0
    category_n: int = 0
    category_right: int = 0
    grade_n: int = 0
    grade_right: int = 0
    confident_n: int = 0
    """Category decisions reported with confidence >= 0.9 ..."""
    confident_right: int = 0
    """... and how many of them were right."""
    category_confusion: Counter[tuple[str, str]] = field(default_factory=Counter)
    grade_confusion: Counter[tuple[str, str]] = field(default_factory=Counter)
    by_style: dict[str, list[int]] = field(default_factory=dict)
    """style -> [lines, category right, graded lines, grade right]"""
    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def category_accuracy(self) -> float:
        return self.category_right / self.category_n if self.category_n else 0.0

    @property
    def grade_accuracy(self) -> float:
        return self.grade_right / self.grade_n if self.grade_n else 0.0

    def per_category(self) -> dict[str, tuple[float, float, int]]:
        """category -> (precision, recall, support)."""
        out = {}
        for cat in Category:
            c = cat.value
            tp = self.category_confusion[(c, c)]
            predicted = sum(n for (_, got), n in self.category_confusion.items() if got == c)
            actual = sum(n for (want, _), n in self.category_confusion.items() if want == c)
            out[c] = (tp / predicted if predicted else 0.0, tp / actual if actual else 0.0, actual)
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "lines": self.n,
            "category_lines": self.category_n,
            "category_accuracy": round(self.category_accuracy, 4),
            "grade_lines": self.grade_n,
            "grade_accuracy": round(self.grade_accuracy, 4),
            "confident": {
                "threshold": CONFIDENT,
                "decisions": self.confident_n,
                "right": round(self.confident_right / self.confident_n, 4) if self.confident_n else None,
            },
            "per_category": {
                c: {"precision": round(p, 4), "recall": round(r, 4), "support": s}
                for c, (p, r, s) in self.per_category().items()
            },
            "category_confusion": [
                {"labelled": a, "assigned": b, "count": n} for (a, b), n in sorted(self.category_confusion.items())
            ],
            "grade_confusion": [
                {"labelled": a, "assigned": b, "count": n} for (a, b), n in sorted(self.grade_confusion.items())
            ],
            "by_style": {
                s: dict(zip(("lines", "category_right", "grade_lines", "grade_right"), v, strict=True))
                for s, v in sorted(self.by_style.items())
            },
        }


def evaluate(rows: Iterable[dict[str, Any]], engine: TriageEngine) -> Report:
    """Triage every labelled row in order and compare with its labels."""
    report = Report()
    histories: dict[str, list[HistoryEntry]] = {}
    for number, row in enumerate(rows, 1):
        event = complaint_event(row, number)
        customer = event.complaint.customer.id
        record, histories[customer] = engine.triage(event, histories.get(customer, []))
        _score(report, row, record)
    return report


def _score(report: Report, row: dict[str, Any], record: TriagedTicket) -> None:
    report.n += 1
    style = report.by_style.setdefault(str(row.get("style") or row.get("source") or "-"), [0, 0, 0, 0])
    style[0] += 1
    wrong = False
    if row.get("category"):
        want, got = str(row["category"]), record.category.value
        report.category_n += 1
        report.category_right += want == got
        style[1] += want == got
        report.category_confusion[(want, got)] += 1
        if record.confidence >= CONFIDENT and not record.manual_triage:
            report.confident_n += 1
            report.confident_right += want == got
        wrong |= want != got
    if row.get("grade"):
        want, got = str(row["grade"]), record.grade.value
        report.grade_n += 1
        report.grade_right += want == got
        style[2] += 1
        style[3] += want == got
        report.grade_confusion[(want, got)] += 1
        wrong |= want != got
    if wrong:
        report.errors.append(
            {
                "ticket_id": record.ticket_id,
                "want": [row.get("category"), row.get("grade")],
                "got": [record.category.value, record.grade.value],
                "confidence": record.confidence,
                "content": record.content,
                "evidence": record.evidence,
                "grade_reasons": record.grade_reasons,
            }
        )


def format_text(report: Report, errors: bool = False) -> str:
    """The report as readable tables."""
    lines = [
        f"lines: {report.n}",
        f"category accuracy: {report.category_accuracy:.1%} of {report.category_n}   "
        f"grade accuracy: {report.grade_accuracy:.1%} of {report.grade_n}",
    ]
    if report.confident_n:
        lines.append(
            f"decided with confidence >= {CONFIDENT}: {report.confident_n} "
            f"({report.confident_n / max(report.category_n, 1):.0%}), of which right "
            f"{report.confident_right / report.confident_n:.1%}"
        )
    lines += ["", f"{'category':28} {'precision':>9} {'recall':>7} {'support':>7}"]
    for cat, (p, r, s) in report.per_category().items():
        lines.append(f"{cat:28} {p:9.1%} {r:7.1%} {s:7d}")
    cats = [c.value for c in Category]
    short = [c.split(".")[1][:6] for c in cats]
    lines += [
        "",
        "category confusion (rows: labelled, columns: assigned)",
        " " * 28 + " ".join(f"{s:>6}" for s in short),
    ]
    for c in cats:
        lines.append(f"{c:28}" + " ".join(f"{report.category_confusion[(c, d)]:6d}" for d in cats))
    grades = [g.value for g in Grade]
    lines += ["", "grade confusion (rows: labelled, columns: assigned)", "      " + " ".join(f"{g:>5}" for g in grades)]
    for g in grades:
        lines.append(f"{g:>5} " + " ".join(f"{report.grade_confusion[(g, h)]:5d}" for h in grades))
    if len(report.by_style) > 1:
        lines += ["", f"{'style':16} {'lines':>5} {'category':>9} {'grade':>7}"]
        for style, (n, cat_ok, graded, grade_ok) in sorted(report.by_style.items()):
            lines.append(f"{style:16} {n:5d} {cat_ok / n:9.1%} {(grade_ok / graded if graded else 0):7.1%}")
    if errors:
        lines.append("")
        for e in report.errors:
            lines.append(
                f"{e['ticket_id']} want {e['want']} got {e['got']} [{e['confidence']}] {e['content'][:70]} "
                f"| {e['evidence'][:4]} | {e['grade_reasons']}"
            )
    return "\n".join(lines)


def read_labelled(path: str) -> list[dict[str, Any]]:
    """JSON lines of a labelled file; raises ValueError naming the line that is not JSON."""
    rows = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}: line {number}: not JSON ({exc.msg})") from None
    return rows
