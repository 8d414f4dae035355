"""Triage quality on labelled sets: accuracy, per-category precision/recall, confusion matrices.

    .venv/bin/python tests/benchmarks/eval_triage.py [FILE ...] [--errors] [--rules-only] [--format json]

Default: every held-out batch in tests/data/heldout/ (never trained on), one report each and one
for all together. The same report as `ticketstream triage evaluate FILE` (ticketstream/triage/evaluation.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from ticketstream.triage.classify import Classifier, load_rules  # noqa: E402
from ticketstream.triage.engine import TriageEngine  # noqa: E402
from ticketstream.triage.evaluation import evaluate, format_text, read_labelled  # noqa: E402
from ticketstream.triage.grading import Grader  # noqa: E402
from ticketstream.triage.grading import load_rules as load_grading_rules  # noqa: E402

HELDOUT = REPO / "tests" / "data" / "heldout"


def rules_only_engine() -> TriageEngine:
    """What the phrase rules alone do (no learned model)."""
    grading = load_grading_rules()
    grading = grading.model_copy(update={"model": grading.model.model_copy(update={"use": False})})
    return TriageEngine(Classifier(load_rules()), Grader(grading), model=None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="*", help="labelled JSON lines (default: tests/data/heldout/*.jsonl)")
    parser.add_argument("--errors", action="store_true", help="list every misclassified or misgraded complaint")
    parser.add_argument("--rules-only", action="store_true", help="the phrase rules alone, without the model")
    parser.add_argument("--format", choices=["text", "json"], default="text")
    args = parser.parse_args()
    files = [Path(f) for f in args.files] or sorted(HELDOUT.glob("*.jsonl"))
    engine = rules_only_engine() if args.rules_only else TriageEngine()
    everything = []
    out = {}
    for path in files:
        rows = read_labelled(str(path))
        everything += rows
        report = evaluate(rows, engine)
        if args.format == "json":
            out[path.name] = report.as_dict()
        else:
            print(
                f"== {path.name}: category {report.category_accuracy:.1%}, grade {report.grade_accuracy:.1%} "
                f"({report.n} lines)"
            )
    report = evaluate(everything, engine)
    if args.format == "json":
        out["all"] = report.as_dict()
        print(json.dumps(out, ensure_ascii=False, indent=2))
    else:
        print("\n== all\n" + format_text(report, errors=args.errors))


if __name__ == "__main__":
    main()
