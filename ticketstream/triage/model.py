"""The learned triage model (分類模型): linear models over character 1-3-grams of a complaint.

Why a learned model: hand-written phrase rules said exactly why a ticket got its category, but on
complaints written by people who never saw them they placed only 55-75 % right; customers keep
finding words no rule lists. A linear model over character n-grams (TF-IDF, multinomial logistic
regression) learns the whole vocabulary of thousands of labelled complaints and needs no Chinese
word segmentation. It has two heads over one vocabulary: `category` (the twelve codes of DOMAIN §2)
and `content_grade` (L1..L4 from the words alone, before modifiers), and the rules stay the audit
evidence and the answer where the model is unsure (`classify.py`, `grading.py`).

Inference is a sparse dot product with numpy over the model's weight table: no scikit-learn at
run time (it is needed only to train: `triage_training.py`). The file is an `.npz` of plain arrays
(no pickles, so loading one cannot run code) with a JSON header naming the format and version.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import zipfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache, partial
from pathlib import Path
from typing import Any

import ahocorasick
import numpy as np

from ticketstream.policyfile import DATA_DIR, PolicyError

FORMAT = 1
"""The layout of the model file; a file of another format is refused at load."""

NGRAM_SIZES = (1, 2, 3)
SHIPPED = DATA_DIR / "triage_model.npz"


class ModelFileError(PolicyError):
    """A model file is missing, corrupt or incompatible; the message names the file and the problem."""


_NOT_ALNUM = re.compile(r"[\W_]+")
_DIGITS_AS_ZERO = str.maketrans("123456789", "000000000")


def text_for_model(normalized: str) -> str:
    """Letters and digits only, each digit as 0: amounts, phone and order numbers vary without
    changing what a complaint is about (the grader reads amounts itself)."""
    return _NOT_ALNUM.sub("", normalized).translate(_DIGITS_AS_ZERO)


def grams(normalized: str) -> Counter[str]:
    """Character 1-, 2- and 3-grams of the normalised text, with their counts."""
    text = text_for_model(normalized)
    found: Counter[str] = Counter()
    for size in NGRAM_SIZES:
        found.update(text[i : i + size] for i in range(len(text) - size + 1))
    return found


Features = tuple[np.ndarray, np.ndarray]
"""(feature indices, TF-IDF values) of one text."""


class Prediction:
    """One head's answer for one text: the label, its calibrated probability, every label's
    probability, and (computed when asked, since most are never shown) the n-grams that spoke most
    for the label against the runner-up."""

    __slots__ = ("label", "probability", "labels", "probabilities", "_why", "_grams")

    def __init__(
        self,
        label: str,
        probability: float,
        labels: tuple[str, ...],
        probabilities: tuple[float, ...],
        why: Callable[[], tuple[str, ...]] | tuple[str, ...] = (),
    ) -> None:
        self.label, self.probability, self.labels, self.probabilities = label, probability, labels, probabilities
        self._why = why
        self._grams: tuple[str, ...] | None = None

    @property
    def grams(self) -> tuple[str, ...]:
        if self._grams is None:
            self._grams = self._why() if callable(self._why) else self._why
        return self._grams

    def probability_of(self, label: str) -> float:
        return self.probabilities[self.labels.index(label)] if label in self.labels else 0.0

    def __repr__(self) -> str:
        return f"Prediction({self.label!r}, {self.probability:.3f})"


@dataclass(frozen=True, slots=True)
class Head:
    """One linear classifier over the shared features."""

    labels: tuple[str, ...]
    coef: np.ndarray
    """(features, labels) weights."""
    intercept: np.ndarray
    temperature: float
    """Scores are divided by this before the softmax: fitted on held-out folds so that the
    reported probabilities match how often the model is right."""


class TriageModel:
    """TF-IDF (sublinear tf, L2-normalised) features, and one linear head per label kind."""

    def __init__(self, vocabulary: list[str], idf: np.ndarray, heads: dict[str, Head], meta: dict[str, Any]) -> None:
        self.vocabulary = vocabulary
        # Every occurrence of every known n-gram in one pass of an Aho-Corasick automaton (C):
        # the same n-grams `grams` counts, a third of the time of slicing them out in Python.
        self._automaton = ahocorasick.Automaton()
        for i, gram in enumerate(vocabulary):
            self._automaton.add_word(gram, i)
        self._automaton.make_automaton()
        self.idf = idf.astype(np.float64)
        self.heads = heads
        self.meta = meta
        # All heads side by side, so one gather of a text's rows serves them all.
        self._coef = np.hstack([h.coef for h in heads.values()])
        self._intercept = np.concatenate([h.intercept for h in heads.values()])
        bounds = np.cumsum([0, *(len(h.labels) for h in heads.values())])
        self._slices = [
            (name, head, int(bounds[i]), int(bounds[i + 1])) for i, (name, head) in enumerate(heads.items())
        ]

    @property
    def version(self) -> str:
        return str(self.meta["model_version"])

    def features(self, normalized: str) -> Features:
        """(feature indices, values) of a text: known n-grams only."""
        found = Counter(index for _, index in self._automaton.iter(text_for_model(normalized)))
        if not found:
            return np.empty(0, dtype=np.int64), np.empty(0)
        idx = np.fromiter(found.keys(), dtype=np.int64, count=len(found))
        tf = np.fromiter(found.values(), dtype=np.float64, count=len(found))
        values = (1.0 + np.log(tf)) * self.idf[idx]
        return idx, values / math.sqrt(float(values @ values))

    def predict(self, head_name: str, normalized: str, features: Features | None = None) -> Prediction:
        """The most probable label of `head_name` with its calibrated probability."""
        return self.predict_all(normalized, features)[head_name]

    def predict_all(self, normalized: str, features: Features | None = None) -> dict[str, Prediction]:
        """Every head's prediction, from one gather of the weight rows the text's n-grams select."""
        idx, values = features if features is not None else self.features(normalized)
        rows = self._coef[idx]
        scores = ((values @ rows if len(idx) else 0.0) + self._intercept).tolist()
        out = {}
        for name, head, lo, hi in self._slices:
            head_scores = [x / head.temperature for x in scores[lo:hi]]
            ranked = sorted(range(len(head_scores)), key=head_scores.__getitem__, reverse=True)
            best, runner = ranked[0], ranked[1]
            exps = [math.exp(x - head_scores[best]) for x in head_scores]
            total = sum(exps)
            out[name] = Prediction(
                head.labels[best],
                exps[best] / total,
                head.labels,
                tuple(e / total for e in exps),
                partial(self._telling, idx, values, lo + best, lo + runner),
            )
        return out

    def _telling(self, idx: np.ndarray, values: np.ndarray, best: int, runner: int) -> tuple[str, ...]:
        """The n-grams that spoke most for label `best` against `runner`. Gathers its two weight
        columns again rather than keeping the text's weight rows alive in every prediction (the
        triage engine remembers predictions of thousands of texts)."""
        if not len(idx):
            return ()
        contribution = (values * (self._coef[idx, best] - self._coef[idx, runner])).tolist()
        order = sorted(range(len(contribution)), key=contribution.__getitem__, reverse=True)[:4]
        positions = idx.tolist()
        return tuple(self.vocabulary[positions[i]] for i in order if contribution[i] > 0)

    # -- the file --------------------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        arrays: dict[str, np.ndarray] = {
            "header": np.array(
                json.dumps({**self.meta, "format": FORMAT, "heads": list(self.heads)}, ensure_ascii=False)
            ),
            "vocabulary": np.array(self.vocabulary, dtype=np.str_),
            "idf": self.idf.astype(np.float32),
        }
        for name, head in self.heads.items():
            arrays[f"{name}.labels"] = np.array(head.labels, dtype=np.str_)
            arrays[f"{name}.coef"] = head.coef.astype(np.float32)
            arrays[f"{name}.intercept"] = head.intercept.astype(np.float64)
            arrays[f"{name}.temperature"] = np.array(head.temperature, dtype=np.float64)
        with Path(path).open("wb") as fh:
            np.savez_compressed(fh, **arrays)  # type: ignore[arg-type]


def load_model(
    path: str | Path | None = None, require_heads: tuple[str, ...] = ("category", "content_grade")
) -> TriageModel:
    """Read a model file (the shipped one when `path` is None), or raise ModelFileError naming
    the file and the problem: missing, not a model file, another format, missing heads, shapes
    that do not agree."""
    source = Path(path) if path else SHIPPED
    if not source.is_file():
        raise ModelFileError(f"{source}: no such model file")
    try:
        with np.load(source, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise ModelFileError(f"{source}: not a ticketstream model file ({exc})") from None
    try:
        header = json.loads(str(arrays["header"]))
    except (KeyError, ValueError):
        raise ModelFileError(f"{source}: not a ticketstream model file (no header)") from None
    if header.get("format") != FORMAT:
        raise ModelFileError(
            f"{source}: model format {header.get('format')!r}, this release reads format {FORMAT}; "
            "retrain it with `ticketstream triage train`"
        )
    missing = [h for h in require_heads if h not in header.get("heads", [])]
    if missing:
        raise ModelFileError(f"{source}: the model has no {', '.join(missing)} head")
    try:
        vocabulary = [str(g) for g in arrays["vocabulary"]]
        idf = arrays["idf"]
        heads = {}
        for name in header["heads"]:
            labels = tuple(str(x) for x in arrays[f"{name}.labels"])
            coef = arrays[f"{name}.coef"].astype(np.float64)
            intercept = arrays[f"{name}.intercept"].astype(np.float64)
            if coef.shape != (len(vocabulary), len(labels)) or intercept.shape != (len(labels),) or len(labels) < 2:
                raise ModelFileError(f"{source}: the {name} head's weights do not fit its vocabulary and labels")
            heads[name] = Head(labels, coef, intercept, float(arrays[f"{name}.temperature"]))
    except KeyError as exc:
        raise ModelFileError(f"{source}: incomplete model file (no {exc.args[0]})") from None
    if idf.shape != (len(vocabulary),):
        raise ModelFileError(f"{source}: the idf table does not fit the vocabulary")
    return TriageModel(vocabulary, idf, heads, header)


@cache
def shipped_model() -> TriageModel:
    """The shipped model, loaded once per process."""
    return load_model()


def fingerprint(rows: Sequence[tuple[str, ...]], params: dict[str, Any]) -> str:
    """A short digest of the training data and parameters: the model's version."""
    digest = hashlib.sha256(json.dumps([rows, params], ensure_ascii=False, sort_keys=True).encode())
    return digest.hexdigest()[:12]
