"""Inbound events: the contract between channel / handling systems and ticketstream (DOMAIN §1, §4).

Every event is an envelope ``{event_id, type, ticket_id, occurred_at, schema_version, data}``;
``data`` is validated by the model of its ``type``. Timestamps must carry an explicit UTC offset:
a naive time is ambiguous between Beijing time and UTC, and an SLA clock cannot guess.

Unknown fields are allowed and kept (``model_extra``) but never interpreted, so that a newer
producer that adds a field does not break an older worker.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

SCHEMA_VERSION = 1


class Channel(StrEnum):
    """Where a complaint came in (渠道)."""

    HOTLINE = "hotline"
    ONLINE = "online"
    APP = "app"
    WEB = "web"
    WECHAT = "wechat"
    SOCIAL = "social"
    SMS = "sms"
    EMAIL = "email"
    STORE = "store"
    GOV_12345 = "gov_12345"
    CONSUMER_12315 = "consumer_12315"
    MIIT = "miit"
    OTHER = "other"


class Tier(StrEnum):
    ORDINARY = "ordinary"
    VIP = "vip"
    ENTERPRISE = "enterprise"


class ServiceType(StrEnum):
    MOBILE = "mobile"
    BROADBAND = "broadband"
    IPTV = "iptv"
    FIXED = "fixed"
    OTHER = "other"


class Grade(StrEnum):
    """Severity (分級), L1 most severe (重大), L4 least (輕微)."""

    L1 = "L1"
    L2 = "L2"
    L3 = "L3"
    L4 = "L4"


class Category(StrEnum):
    """The twelve two-level complaint categories of DOMAIN §2 (003 §2.2.2)."""

    SERVICE_ATTITUDE = "service.attitude"
    SERVICE_EFFICIENCY = "service.efficiency"
    SERVICE_CONTENT = "service.content"
    TECHNICAL_NETWORK_QUALITY = "technical.network_quality"
    TECHNICAL_EQUIPMENT_FAULT = "technical.equipment_fault"
    TECHNICAL_SYSTEM_ISSUE = "technical.system_issue"
    BUSINESS_PLAN_CHANGE = "business.plan_change"
    BUSINESS_TARIFF_BILLING = "business.tariff_billing"
    BUSINESS_HANDLING = "business.handling"
    OTHER_COMPLAINT_HANDLING = "other.complaint_handling"
    OTHER_PRIVACY = "other.privacy"
    OTHER_GENERAL = "other.general"

    @property
    def top_level(self) -> str:
        return self.value.split(".", 1)[0]


class Team(StrEnum):
    """Routing targets (DOMAIN §6)."""

    FRONTLINE = "frontline"
    COMPLAINT_DESK = "complaint_desk"
    NETWORK_OPS = "network_ops"
    TECH_SUPPORT = "tech_support"
    BILLING = "billing"
    PRODUCT = "product"
    DATA_SECURITY = "data_security"
    MANAGEMENT = "management"


class EventType(StrEnum):
    COMPLAINT_RECEIVED = "complaint.received"
    RESPONDED = "ticket.responded"
    ASSIGNED = "ticket.assigned"
    INVESTIGATION_STARTED = "ticket.investigation_started"
    INVESTIGATION_COMPLETED = "ticket.investigation_completed"
    WAITING_CUSTOMER = "ticket.waiting_customer"
    CUSTOMER_REPLIED = "ticket.customer_replied"
    REGRADED = "ticket.regraded"
    RECLASSIFIED = "ticket.reclassified"
    RESOLVED = "ticket.resolved"
    FEEDBACK_SENT = "ticket.feedback_sent"
    SURVEY_COMPLETED = "ticket.survey_completed"
    CLOSED = "ticket.closed"
    REOPENED = "ticket.reopened"
    ESCALATED = "ticket.escalated"


Identifier = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")]
ShortText = Annotated[str, Field(min_length=1, max_length=200)]


class _Open(BaseModel):
    """Base of every inbound model: unknown fields are kept aside, values are immutable."""

    model_config = ConfigDict(extra="allow", frozen=True, str_strip_whitespace=True)


class Customer(_Open):
    """Who complains. name/phone/id_number are personal data (DOMAIN §8): mask before logging."""

    id: Identifier
    tier: Tier
    name: ShortText | None = None
    phone: Annotated[str, Field(min_length=3, max_length=32, pattern=r"^\+?[0-9 ()\-]+$")] | None = None
    id_number: Annotated[str, Field(pattern=r"^[0-9]{17}[0-9Xx]$|^[0-9]{15}$")] | None = None


class Region(_Open):
    province: ShortText
    city: ShortText


class ComplaintReceivedData(_Open):
    """`complaint.received`: a new complaint as a channel system accepted it (受理)."""

    channel: Channel
    customer: Customer
    region: Region
    content: Annotated[str, Field(min_length=1, max_length=20_000)]
    service_type: ServiceType | None = None
    first_contact_agent: ShortText | None = None
    affected_users: Annotated[int, Field(ge=1, le=100_000_000)] | None = None
    address: Annotated[str, Field(max_length=500)] | None = None
    amount_yuan: Annotated[float, Field(ge=0, le=1e12)] | None = None


class LifecycleData(_Open):
    """Data of a lifecycle event from a handling system; every field optional."""

    reason: Annotated[str, Field(max_length=2000)] | None = None
    agent: ShortText | None = None
    note: Annotated[str, Field(max_length=5000)] | None = None


class RegradedData(LifecycleData):
    grade: Grade


class ReclassifiedData(LifecycleData):
    category: Category


class AssignedData(LifecycleData):
    team: Team


class SurveyCompletedData(LifecycleData):
    score: Annotated[int, Field(ge=1, le=5)]


DATA_MODELS: dict[EventType, type[_Open]] = {t: LifecycleData for t in EventType} | {
    EventType.COMPLAINT_RECEIVED: ComplaintReceivedData,
    EventType.REGRADED: RegradedData,
    EventType.RECLASSIFIED: ReclassifiedData,
    EventType.ASSIGNED: AssignedData,
    EventType.SURVEY_COMPLETED: SurveyCompletedData,
}

EventData = ComplaintReceivedData | RegradedData | ReclassifiedData | AssignedData | SurveyCompletedData | LifecycleData


class Event(_Open):
    """The envelope every producer sends to `tickets.inbound`, keyed by `ticket_id`."""

    event_id: Identifier
    type: EventType
    ticket_id: Identifier
    occurred_at: AwareDatetime
    schema_version: Literal[1]
    data: EventData

    @field_validator("data", mode="before")
    @classmethod
    def _data_for_type(cls, value: Any, info: ValidationInfo) -> Any:
        event_type = info.data.get("type")
        if event_type is None:
            # The type itself was invalid; that error is reported, the data cannot be judged.
            raise ValueError("cannot validate data without a valid event type")
        if isinstance(value, BaseModel):
            value = value.model_dump(exclude_none=True)
        return DATA_MODELS[event_type].model_validate(value)

    @property
    def complaint(self) -> ComplaintReceivedData:
        """The complaint data of a `complaint.received` event (TypeError for any other type)."""
        if not isinstance(self.data, ComplaintReceivedData):
            raise TypeError(f"{self.type} carries no complaint")
        return self.data
