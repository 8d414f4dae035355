"""Triage quality on a labelled set: per-category precision/recall, accuracy, grade confusion.

    .venv/bin/python tests/benchmarks/eval_triage.py [tests/data/labelled_complaints.jsonl] [--errors] [--rules-only]

Each line: {"ticket_id", "occurred_at", "channel", "tier", "customer_id", "province", "city",
"content", "category", "grade"}. Lines are triaged in file order with the same engine as the
stream (customer history accumulates, so repeat complaints are graded as they would be live).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from schemas.events import Category, Event, Grade  # noqa: E402
from ticketstream.classify import Classifier, load_rules  # noqa: E402
from ticketstream.triage import HistoryEntry, TriageEngine  # noqa: E402


def labelled_event(row: dict) -> Event:
    return Event.model_validate({
        "event_id": f"{row['ticket_id']}:received", "type": "complaint.received", "ticket_id": row["ticket_id"],
        "occurred_at": row["occurred_at"], "schema_version": 1,
        "data": {"channel": row.get("channel", "hotline"),
                 "customer": {"id": row.get("customer_id", row["ticket_id"]), "tier": row.get("tier", "ordinary")},
                 "region": {"province": row.get("province", "广东"), "city": row.get("city", "广州")},
                 "content": row["content"]},
    })


def evaluate(path: Path, engine: TriageEngine | None = None) -> dict:
    engine = engine or TriageEngine()
    histories: dict[str, list[HistoryEntry]] = {}
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    results = []
    for row in rows:
        event = labelled_event(row)
        cid = event.complaint.customer.id
        record, histories[cid] = engine.triage(event, histories.get(cid, []))
        results.append((row, record))
    n = len(results)
    cat_ok = sum(r["category"] == t.category.value for r, t in results)
    grade_ok = sum(r["grade"] == t.grade.value for r, t in results)
    per_cat = {}
    for cat in Category:
        tp = sum(1 for r, t in results if r["category"] == cat.value and t.category is cat)
        predicted = sum(1 for _, t in results if t.category is cat)
        actual = sum(1 for r, _ in results if r["category"] == cat.value)
        per_cat[cat.value] = (tp / predicted if predicted else 0.0, tp / actual if actual else 0.0, actual)
    confusion = Counter((r["grade"], t.grade.value) for r, t in results)
    return {"n": n, "category_accuracy": cat_ok / n, "grade_accuracy": grade_ok / n, "per_category": per_cat,
            "confusion": confusion, "results": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", nargs="?", default=str(REPO / "tests" / "data" / "labelled_complaints.jsonl"))
    parser.add_argument("--errors", action="store_true", help="list every misclassified or misgraded complaint")
    parser.add_argument("--rules-only", action="store_true",
                        help="without the labelled-examples second opinion (what the phrase rules alone do)")
    args = parser.parse_args()
    engine = None
    if args.rules_only:
        engine = TriageEngine(Classifier(load_rules().with_settings(use_examples=False)))
    report = evaluate(Path(args.file), engine)
    print(f"complaints: {report['n']}")
    print(f"category accuracy: {report['category_accuracy']:.1%}   grade accuracy: {report['grade_accuracy']:.1%}\n")
    print(f"{'category':30} {'precision':>9} {'recall':>7} {'support':>7}")
    for cat, (p, r, s) in report["per_category"].items():
        print(f"{cat:30} {p:9.1%} {r:7.1%} {s:7d}")
    grades = [g.value for g in Grade]
    print("\ngrade confusion (rows: labelled, columns: assigned)")
    print("      " + " ".join(f"{g:>5}" for g in grades))
    for g in grades:
        print(f"{g:>5} " + " ".join(f"{report['confusion'][(g, h)]:5d}" for h in grades))
    if args.errors:
        print()
        for row, t in report["results"]:
            if row["category"] != t.category.value or row["grade"] != t.grade.value:
                print(f"{row['ticket_id']} want {row['category']}/{row['grade']} got {t.category.value}/{t.grade.value} "
                      f"[{t.confidence}] {row['content'][:60]} | {t.evidence[:4]} | {t.grade_reasons}")


if __name__ == "__main__":
    main()
