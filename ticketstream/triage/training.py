"""Training the triage model from labelled complaints (`ticketstream triage train`).

Labelled examples are JSON lines with `content` and any of `category`, `content_grade` (the grade
the words alone deserve, DOMAIN §3 before modifiers) or `grade` (a final grade, used as the content
grade only where no modifier can have applied: an ordinary customer on a non-regulator channel).
The shipped examples (`data/triage_examples.jsonl`) and the corrections people make
(`ticketstream triage corrections`) have this form.

The features are built here and in `triage_model.py` by the same function (`grams`), so training
and inference cannot drift apart; scikit-learn only fits the weights. Probabilities are
calibrated with a temperature fitted on out-of-fold predictions, the folds grouped by the batch an
example came from (`source`): a batch written by one person in one style is the nearest thing to
"text the model has not seen" that a training set holds.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ticketstream.policyfile import DATA_DIR, PolicyError
from ticketstream.schemas.events import Category, Channel, Grade, Tier
from ticketstream.triage.model import NGRAM_SIZES, Head, TriageModel, fingerprint, grams
from ticketstream.triage.text import normalize

SHIPPED_EXAMPLES = DATA_DIR / "triage_examples.jsonl"
REGULATOR_CHANNELS = {Channel.MIIT, Channel.GOV_12345, Channel.CONSUMER_12315}


class LabelledExample(BaseModel):
    """One labelled complaint: what a customer wrote and what a person decided about it."""

    model_config = ConfigDict(extra="ignore")

    content: str = Field(min_length=1)
    category: Category | None = None
    content_grade: Grade | None = None
    grade: Grade | None = None
    channel: Channel | None = None
    tier: Tier | None = None
    source: str = ""

    def grade_label(self) -> Grade | None:
        """The content grade to learn from, if this example gives one."""
        if self.content_grade is not None:
            return self.content_grade
        if (
            self.grade is not None
            and self.channel is not None
            and self.channel not in REGULATOR_CHANNELS
            and self.tier is Tier.ORDINARY
        ):
            return self.grade
        return None


def load_examples(paths: Sequence[str | Path] | None = None) -> list[LabelledExample]:
    """Read labelled JSON lines (the shipped examples when `paths` is empty), or raise PolicyError
    naming the file and line."""
    examples = []
    for path in paths or [SHIPPED_EXAMPLES]:
        source = Path(path)
        try:
            lines = source.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            raise PolicyError(f"{source}: no such file") from None
        except UnicodeDecodeError:
            raise PolicyError(f"{source}: not UTF-8 text") from None
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
                example = LabelledExample.model_validate(raw)
            except (json.JSONDecodeError, ValidationError) as exc:
                raise PolicyError(f"{source}: line {number}: {str(exc).splitlines()[0]}") from None
            if not example.source:
                example = example.model_copy(update={"source": source.stem})
            examples.append(example)
    if not examples:
        raise PolicyError(f"{', '.join(map(str, paths or [SHIPPED_EXAMPLES]))}: no examples")
    return examples


@dataclass(frozen=True)
class TrainingParams:
    min_df: int = 2
    """An n-gram must occur in this many examples to be a feature."""
    c_category: float = 20.0
    c_grade: float = 10.0
    """Inverse regularisation strength of each head's logistic regression."""
    folds: int = 5


@dataclass(frozen=True)
class HeadReport:
    examples: int
    labels: dict[str, int]
    out_of_fold_accuracy: float
    temperature: float


def _require_sklearn() -> Any:
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        raise PolicyError("training needs scikit-learn: pip install 'ticketstream[train]'") from None
    return LogisticRegression


def _matrix(texts: list[Counter[str]], index: dict[str, int], idf: np.ndarray) -> Any:
    from scipy.sparse import csr_matrix

    rows: list[int] = []
    cols: list[int] = []
    values: list[float] = []
    for row, found in enumerate(texts):
        entries = [(index[g], n) for g, n in found.items() if g in index]
        if not entries:
            continue
        vals = np.array([(1.0 + math.log(n)) * idf[i] for i, n in entries])
        vals /= math.sqrt(float(vals @ vals))
        rows.extend([row] * len(entries))
        cols.extend(i for i, _ in entries)
        values.extend(vals.tolist())
    return csr_matrix((values, (rows, cols)), shape=(len(texts), len(index)))


def _fit_temperature(scores: np.ndarray, truth: np.ndarray) -> float:
    """The temperature that minimises the log loss of out-of-fold scores (a grid search: one
    parameter, a smooth curve)."""
    best, best_loss = 1.0, math.inf
    for t in np.exp(np.linspace(math.log(0.1), math.log(50.0), 249)):
        s = scores / t
        s = s - s.max(axis=1, keepdims=True)
        log_p = s - np.log(np.exp(s).sum(axis=1, keepdims=True))
        loss = -float(log_p[np.arange(len(truth)), truth].mean())
        if loss < best_loss:
            best, best_loss = float(t), loss
    return best


def _folds(sources: list[str], labels: np.ndarray, k: int) -> list[np.ndarray]:
    """Test-index folds grouped by source when there are enough sources, else by position."""
    groups = sorted(set(sources))
    if len(groups) >= k:
        fold_of = {g: i % k for i, g in enumerate(groups)}
        assignment = np.array([fold_of[s] for s in sources])
    else:
        assignment = np.arange(len(sources)) % k
    return [np.flatnonzero(assignment == f) for f in range(k) if (assignment == f).any()]


def _train_head(
    X: Any, labels: list[str], sources: list[str], c: float, folds: int, progress: Callable[[str], None]
) -> tuple[Head, HeadReport]:
    LogisticRegression = _require_sklearn()
    names = sorted(set(labels))
    y = np.array([names.index(label) for label in labels])

    def fit(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(classes, coef (features, classes), intercept) as softmax logits; a two-class
        regression's single weight vector becomes logits (0, w)."""
        model = LogisticRegression(C=c, max_iter=3000)
        model.fit(X[rows], y[rows])
        coef, intercept = model.coef_.T, model.intercept_
        if len(model.classes_) == 2:
            coef = np.hstack([np.zeros_like(coef), coef])
            intercept = np.array([0.0, intercept[0]])
        return model.classes_, coef, intercept

    oof = np.zeros((len(y), len(names)))
    for number, test in enumerate(_folds(sources, y, folds), 1):
        train = np.setdiff1d(np.arange(len(y)), test)
        classes, coef, intercept = fit(train)
        scores = np.full((len(test), len(names)), -1e9)
        scores[:, classes] = X[test] @ coef + intercept
        oof[test] = scores
        progress(f"  fold {number}/{folds}: {len(test)} held out")
    temperature = _fit_temperature(oof, y)
    classes, final_coef, final_intercept = fit(np.arange(len(y)))
    coef = np.zeros((X.shape[1], len(names)))
    intercept = np.full(len(names), -1e9)
    coef[:, classes] = final_coef
    intercept[classes] = final_intercept
    accuracy = float((oof.argmax(axis=1) == y).mean())
    return (
        Head(tuple(names), coef, intercept, temperature),
        HeadReport(len(y), dict(Counter(labels)), accuracy, temperature),
    )


def train(
    examples: Iterable[LabelledExample],
    params: TrainingParams | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> tuple[TriageModel, dict[str, HeadReport]]:
    """Fit both heads on the examples; return the model and what was learned from how much."""
    params = params or TrainingParams()
    examples = list(examples)
    texts = [grams(normalize(e.content)) for e in examples]
    df: Counter[str] = Counter()
    for found in texts:
        df.update(found.keys())
    vocabulary = sorted(g for g, n in df.items() if n >= params.min_df)
    index = {g: i for i, g in enumerate(vocabulary)}
    n = len(examples)
    idf = np.array([math.log((1 + n) / (1 + df[g])) + 1.0 for g in vocabulary])
    progress(f"{n} examples, {len(vocabulary)} features (character {NGRAM_SIZES} grams in >= {params.min_df} examples)")
    X = _matrix(texts, index, idf)
    heads: dict[str, Head] = {}
    reports: dict[str, HeadReport] = {}
    label_of: dict[str, Callable[[LabelledExample], Category | Grade | None]] = {
        "category": lambda e: e.category,
        "content_grade": lambda e: e.grade_label(),
    }
    for name, c in (("category", params.c_category), ("content_grade", params.c_grade)):
        labelled = [(i, label) for i, e in enumerate(examples) if (label := label_of[name](e)) is not None]
        rows = [i for i, _ in labelled]
        labels = [label.value for _, label in labelled]
        if len(set(labels)) < 2:
            raise PolicyError(f"the {name} head needs examples of at least two labels, got {sorted(set(labels))}")
        progress(f"training the {name} head on {len(rows)} examples")
        heads[name], reports[name] = _train_head(
            X[rows], labels, [examples[i].source for i in rows], c, params.folds, progress
        )
    key_rows = [
        (e.content, e.category.value if e.category else "", g.value if (g := e.grade_label()) else "") for e in examples
    ]
    version = f"lr1-{fingerprint(key_rows, params.__dict__)}"
    meta = {
        "model_version": version,
        "examples": n,
        "features": len(vocabulary),
        "params": params.__dict__,
        "heads_report": {k: v.__dict__ for k, v in reports.items()},
    }
    return TriageModel(vocabulary, idf, heads, meta), reports
