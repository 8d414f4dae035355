"""Triage: classify, then grade, then route one complaint (DOMAIN §2, §3, §6), as one pure step.

The same `TriageEngine` serves the stream (the ticket process, with every customer's history
replicated to every worker: `ticketstream.triage.history`) and the offline `ticketstream classify`
command (history in a dict, in file order),
so an operator testing a rule change sees exactly what the workers would do.

The text is normalised once and matched once against the classifier's and the grader's
phrases together; both read their evidence from that single pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Literal

from ticketstream.schemas.events import Category, ComplaintReceivedData, Event, Grade, Team
from ticketstream.schemas.tickets import TriagedTicket
from ticketstream.triage.classify import Classification, Classifier
from ticketstream.triage.grading import GradeInputs, Grader
from ticketstream.triage.matching import PhraseMatcher
from ticketstream.triage.model import Prediction, TriageModel, shipped_model
from ticketstream.triage.routing import Router
from ticketstream.triage.text import normalize

HISTORY_LIMIT = 64
"""Complaints remembered per customer (within the repeat window); bounds a pathological customer."""

# One remembered complaint: (ticket_id, category code, occurred_at as epoch seconds).
HistoryEntry = tuple[str, str, float]


def earlier_in_window(
    history: Sequence[HistoryEntry], ticket_id: str, top_level: str, at: float, window_days: int
) -> int:
    """Earlier complaints (other tickets) in the same top-level category within the window before `at`."""
    since = at - window_days * 86_400
    return sum(
        1 for tid, code, ts in history if tid != ticket_id and since <= ts < at and code.split(".", 1)[0] == top_level
    )


def previous_ticket(history: Sequence[HistoryEntry], ticket_id: str, at: float) -> str | None:
    """The customer's most recent earlier ticket: what a complaint about complaint handling is about."""
    earlier = [(ts, tid) for tid, _, ts in history if tid != ticket_id and ts <= at]
    return max(earlier)[1] if earlier else None


def remember(history: Sequence[HistoryEntry], entry: HistoryEntry, window_days: int) -> list[HistoryEntry]:
    """History with `entry` added once (idempotent on re-delivery), pruned to the window and limit."""
    kept = [h for h in history if h[0] != entry[0]]
    kept.append(entry)
    newest = max(ts for _, _, ts in kept)
    kept = [h for h in kept if h[2] >= newest - window_days * 86_400]
    kept.sort(key=lambda h: (h[2], h[0]))  # by time; ties by ticket: the same kept whatever the order added
    return kept[-HISTORY_LIMIT:]


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the single matching pass found: classification and the grader's fired signals."""

    normalized: str
    classification: Classification
    signals: dict[str, list[str]]
    grade_opinion: Prediction | None


READINGS_REMEMBERED = 4096
"""Texts whose reading (`TriageEngine._read_text`) a worker remembers: a ticket's first revisions
(the assignment's, an override) come within minutes of its triage, on the same worker."""

Reading = tuple[
    str, tuple[tuple[str, object], ...], tuple[tuple[str, tuple[str, ...]], ...], Prediction | None, Prediction | None
]
"""Normalised text, category phrase hits, grading signals with their phrases, the model's category
and content-grade opinions."""


class TriageEngine:
    """`model` is the learned triage model (the shipped one by default; None for rules only)."""

    def __init__(
        self,
        classifier: Classifier | None = None,
        grader: Grader | None = None,
        router: Router | None = None,
        model: TriageModel | Literal["shipped"] | None = "shipped",
    ) -> None:
        self.model = shipped_model() if model == "shipped" else model
        self.classifier = classifier or Classifier(model=self.model)
        self.grader = grader or Grader()
        self.router = router or Router()
        # One matcher for both rule sets: payload ("c", (category, weight)) or ("s", signal name).
        self._matcher: PhraseMatcher[tuple[str, object]] = PhraseMatcher(
            [(p, ("c", payload)) for p, payload in self.classifier.phrases()]
            + [(p, ("s", name)) for p, name in self.grader.signal_phrases()],
            group=lambda payload: payload[0],
        )
        self._read = lru_cache(maxsize=READINGS_REMEMBERED)(self._read_text)

    @property
    def repeat_window_days(self) -> int:
        return self.grader.rules.modifiers.repeat_window_days

    def evidence(self, content: str, classification: Classification | None = None) -> Evidence:
        """Normalise and match once; classify unless a classification is already decided."""
        norm, category_hits, signals, category_opinion, grade_opinion = self._read(content)
        classification = classification or self.classifier.decide(
            list(category_hits),  # type: ignore[arg-type]
            norm,
            category_opinion,
        )
        return Evidence(norm, classification, {name: list(phrases) for name, phrases in signals}, grade_opinion)

    def _read_text(self, content: str) -> Reading:
        """What the rules and the model find in a text: the same for every revision of a ticket
        (a revision after an assignment or an override re-reads the complaint it was triaged
        from), so the engine remembers it for the most recent texts (`_read`)."""
        norm = normalize(content)
        category_hits = []
        signals: dict[str, list[str]] = {}
        for phrase, (kind, payload) in self._matcher.find(norm):
            if kind == "c":
                category_hits.append((phrase, payload))
            else:
                signals.setdefault(payload, []).append(phrase)  # type: ignore[arg-type]
        category_opinion = grade_opinion = None
        if self.model is not None:
            opinions = self.model.predict_all(norm)
            category_opinion, grade_opinion = opinions["category"], opinions["content_grade"]
        frozen_signals = tuple((name, tuple(phrases)) for name, phrases in signals.items())
        return norm, tuple(category_hits), frozen_signals, category_opinion, grade_opinion

    def triage(
        self, event: Event, history: Sequence[HistoryEntry], incident_id: str | None = None
    ) -> tuple[TriagedTicket, list[HistoryEntry]]:
        """Triage a `complaint.received` event against the customer's history; return the record
        and the customer's updated history."""
        record, entry = self.triage_entry(event, history, incident_id)
        return record, remember(history, entry, self.repeat_window_days)

    def triage_entry(
        self, event: Event, history: Sequence[HistoryEntry], incident_id: str | None = None
    ) -> tuple[TriagedTicket, HistoryEntry]:
        """`triage`, returning the complaint's own history entry instead of the updated history:
        what a worker sends to the others (`CustomerHistories`)."""
        data = event.complaint
        at = event.occurred_at.timestamp()
        evidence = self.evidence(data.content)
        category = evidence.classification.category
        earlier = earlier_in_window(history, event.ticket_id, category.top_level, at, self.repeat_window_days)
        linked = (
            previous_ticket(history, event.ticket_id, at) if category is Category.OTHER_COMPLAINT_HANDLING else None
        )
        record = self._record(
            event.ticket_id,
            event.event_id,
            event.occurred_at,
            data,
            evidence,
            earlier,
            linked,
            incident_id,
            revision=1,
            overrides=[],
        )
        return record, (event.ticket_id, category.value, at)

    def retriage(
        self,
        record: TriagedTicket,
        category: Category | None = None,
        grade: Grade | None = None,
        team: Team | None = None,
        incident_id: str | None = None,
        note: str | None = None,
        escalation_tier: int | None = None,
    ) -> TriagedTicket:
        """A new revision after a person's override (reclassify, regrade, assign) or an incident link.

        A reclassification re-grades and re-routes with the new category; a person's grade
        replaces the computed one (people may lower a grade; modifiers never do); an assignment
        fixes the team."""
        if category is not None:
            decided = Classification(category, 1.0, ("reclassified by a person",), {}, False)
        else:
            decided = Classification(
                record.category, record.confidence, tuple(record.evidence), {}, record.manual_triage
            )
        data = ComplaintReceivedData(
            channel=record.channel,
            customer=record.customer,
            region=record.region,
            content=record.content,
            service_type=record.service_type,
            first_contact_agent=record.owner,
        )
        evidence = self.evidence(record.content, decided)
        overrides = [*record.overrides, *([note] if note else [])]
        return self._record(
            record.ticket_id,
            record.source_event_id,
            record.received_at,
            data,
            evidence,
            record.repeat_count,
            record.linked_ticket_id,
            incident_id or record.incident_id,
            revision=record.revision + 1,
            overrides=overrides,
            grade_override=grade or record.person_grade,
            team_override=team or record.person_team,
            escalation_tier=record.escalation_tier if escalation_tier is None else escalation_tier,
        )

    def _record(
        self,
        ticket_id: str,
        source_event_id: str,
        received_at: datetime,
        data: ComplaintReceivedData,
        evidence: Evidence,
        earlier: int,
        linked: str | None,
        incident_id: str | None,
        revision: int,
        overrides: list[str],
        grade_override: Grade | None = None,
        team_override: Team | None = None,
        escalation_tier: int = 0,
    ) -> TriagedTicket:
        classification = evidence.classification
        decision = self.grader.grade(
            evidence.normalized,
            evidence.signals,
            GradeInputs(
                category=classification.category,
                channel=data.channel,
                tier=data.customer.tier,
                earlier_same_category=earlier,
                incident_id=incident_id,
                affected_users=data.affected_users,
                amount_yuan=data.amount_yuan,
                manual_triage=classification.fallback,
                model_grade=evidence.grade_opinion,
            ),
        )
        grade, reasons = decision.grade, list(decision.reasons)
        if grade_override is not None:
            reasons.append(f"override:regraded {grade.value}->{grade_override.value} by a person")
            grade = grade_override
        route = self.router.route(
            classification.category,
            grade,
            data.channel,
            data.region.province,
            data.region.city,
            team_override,
            escalation_tier,
        )
        return TriagedTicket(
            triage_id=f"{ticket_id}:triage:{revision}",
            ticket_id=ticket_id,
            revision=revision,
            source_event_id=source_event_id,
            received_at=received_at,
            channel=data.channel,
            customer=data.customer,
            region=data.region,
            content=data.content,
            service_type=data.service_type,
            category=classification.category,
            confidence=classification.confidence,
            evidence=list(classification.evidence),
            manual_triage=classification.fallback,
            grade=grade,
            content_grade=decision.content_grade,
            grade_reasons=reasons,
            team=route.team,
            queue=route.queue,
            escalation_tier=route.escalation_tier,
            notify=list(route.notify),
            routing_reason=route.reason,
            owner=data.first_contact_agent,
            repeat_count=earlier,
            linked_ticket_id=linked,
            incident_id=incident_id,
            overrides=overrides,
            person_grade=grade_override,
            person_team=team_override,
            model_version=self.model.version if self.model is not None else None,
        )
