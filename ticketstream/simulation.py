"""Synthetic complaint traffic that exercises every path of the system (pure, seeded, no Kafka).

Complaints follow the shares of DOMAIN §2 (network quality is the largest category), come
from every channel, many cities and all customer tiers, in simplified and traditional script,
with a pool of repeat complainants. Each complaint is followed by its lifecycle events
(responded, assigned, investigation, pauses, resolved, feedback, survey, closed, sometimes a
reopen). A small share of the traffic is deliberately bad: malformed messages, exact
duplicates, events sent out of order and events that arrive late, so that the dead-letter path,
de-duplication and the tolerant clocks are always exercised.

`time_scale` compresses lifecycle delays: 1.0 is real time (a response after hours), 0.001
makes a day pass in under 90 seconds, which the demo uses with an accelerated SLA policy.
"""

from __future__ import annotations

import heapq
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from ticketstream.schemas.events import Category, Channel

CITIES: list[tuple[str, str]] = [
    ("廣東", "廣州"),
    ("廣東", "深圳"),
    ("廣東", "東莞"),
    ("北京", "北京"),
    ("上海", "上海"),
    ("浙江", "杭州"),
    ("浙江", "寧波"),
    ("江蘇", "南京"),
    ("江蘇", "蘇州"),
    ("四川", "成都"),
    ("湖北", "武漢"),
    ("湖南", "長沙"),
    ("陝西", "西安"),
    ("山東", "濟南"),
    ("山東", "青島"),
    ("河南", "鄭州"),
    ("福建", "廈門"),
    ("重慶", "重慶"),
    ("天津", "天津"),
    ("遼寧", "沈陽"),
]

CHANNEL_WEIGHTS: dict[Channel, float] = {
    Channel.HOTLINE: 40,
    Channel.APP: 14,
    Channel.WECHAT: 12,
    Channel.ONLINE: 8,
    Channel.WEB: 5,
    Channel.STORE: 6,
    Channel.SOCIAL: 3,
    Channel.SMS: 2,
    Channel.EMAIL: 1,
    Channel.GOV_12345: 3,
    Channel.CONSUMER_12315: 2,
    Channel.MIIT: 2,
    Channel.OTHER: 2,
}

# Shares shaped by DOMAIN §2 (003 §1.1: network 41.7 % of complaints, service quality overall
# the largest group, process/billing next).
CATEGORY_WEIGHTS: dict[Category, float] = {
    Category.TECHNICAL_NETWORK_QUALITY: 30,
    Category.TECHNICAL_EQUIPMENT_FAULT: 6,
    Category.TECHNICAL_SYSTEM_ISSUE: 5,
    Category.SERVICE_ATTITUDE: 8,
    Category.SERVICE_EFFICIENCY: 10,
    Category.SERVICE_CONTENT: 5,
    Category.BUSINESS_TARIFF_BILLING: 14,
    Category.BUSINESS_PLAN_CHANGE: 6,
    Category.BUSINESS_HANDLING: 6,
    Category.OTHER_COMPLAINT_HANDLING: 4,
    Category.OTHER_PRIVACY: 2,
    Category.OTHER_GENERAL: 4,
}

# Written in simplified script; a share is converted to traditional at generation time.
TEMPLATES: dict[Category, list[str]] = {
    Category.TECHNICAL_NETWORK_QUALITY: [
        "家里{place}手机信号特别差，打电话老是断断续续，已经{days}天了",
        "最近5G网速慢得要命，刷个视频一直转圈，{place}这边尤其严重",
        "宽带从昨晚开始断网，到现在都连不上，在家办公完全受影响",
        "手机经常掉线，一进{place}就没有信号，打不出去也接不到电话",
        "WiFi连着但是上不了网，游戏延迟高到几百毫秒，卡顿严重",
        "{place}这边网络中断了，整栋楼都没法上网",
        "4G信号时有时无，发个微信都发不出去，请尽快处理",
    ],
    Category.TECHNICAL_EQUIPMENT_FAULT: [
        "光猫一直亮红灯，重启了好几次还是不行，师傅说要换",
        "机顶盒开机就黑屏，电视看不了，{days}天了没人来修",
        "你们给装的路由器坏了，经常自动重启",
        "宽带设备故障，光猫LOS灯闪红，请派人上门",
    ],
    Category.TECHNICAL_SYSTEM_ISSUE: [
        "APP登录不了，一直提示系统繁忙，话费也查不了",
        "网上营业厅充值了{amount}元显示成功但是没到账",
        "APP里的账单数据明显不对，流量显示用了一百多G",
        "小程序一直报错无法办理业务，系统故障吧",
    ],
    Category.SERVICE_ATTITUDE: [
        "客服态度太差了，说话很不耐烦，问两句就挂我电话",
        "营业厅工作人员推诿，说这事不归他们管，让我自己去找",
        "接线员语气恶劣，还骂人，要求道歉",
        "服务人员很不专业，一问三不知",
    ],
    Category.SERVICE_EFFICIENCY: [
        "打你们客服热线打了一个小时都打不通，一直排队",
        "报修{days}天了还没人处理，效率太低",
        "办个业务要来回跑三次，每次都要重复提交资料",
        "等人工客服等了四十分钟，流程太繁琐了",
    ],
    Category.SERVICE_CONTENT: [
        "办理时承诺送{amount}元话费，到现在都没兑现",
        "宣传说不限流量，结果用了20G就限速，和实际不符",
        "说好的上门安装服务根本不到位，装完就走了",
    ],
    Category.BUSINESS_TARIFF_BILLING: [
        "这个月话费莫名其妙多扣了{amount}元，我根本没用那么多",
        "未经我同意给我订购了增值业务，每个月扣费",
        "账单异常，流量费比平时多收了好几倍，资费一点都不透明",
        "乱扣费，开通了什么视频会员我都不知道，要求退费",
        "套餐外收费不明不白，请给我解释清楚每一笔扣费",
    ],
    Category.BUSINESS_PLAN_CHANGE: [
        "想把套餐降档，客服一直说办不了，降档太难了",
        "申请携号转网一直被卡，说有合约限制",
        "销户难，跑了三趟营业厅都没给我注销",
        "改套餐改了一个月还没生效",
    ],
    Category.BUSINESS_HANDLING: [
        "补卡要我带一堆材料，实名认证一直过不了",
        "宽带安装预约了一周都没人上门",
        "申请宽带移机，说好三天结果拖了两周",
        "过户手续办了一半就没下文了，开通也没开通",
    ],
    Category.OTHER_COMPLAINT_HANDLING: [
        "上次投诉到现在都没人处理，也没有任何反馈",
        "我已经投诉过两次了，对处理结果非常不满意",
        "之前的投诉工单被直接关闭了，问题根本没解决",
    ],
    Category.OTHER_PRIVACY: [
        "我的个人信息被泄露了，天天接到骚扰电话推销",
        "怀疑你们把我的号码卖给了别人，每天都有骚扰短信",
        "营业厅把我的身份证复印件随便放，担心信息泄露",
    ],
    Category.OTHER_GENERAL: [
        "希望你们能在小区多建几个基站，建议改进",
        "想咨询一下积分怎么兑换",
        "你们的宣传单太多了，能不能少发点",
    ],
}

PLACES = ["小区", "地下室", "电梯里", "公司", "老家", "学校宿舍", "地铁上"]
SEVERE_SUFFIXES = [
    "，损失了{big}元，再不解决我就找记者曝光",
    "，我已经发微博了，媒体马上会关注",
    "，整个小区几十户都这样，大家联名投诉",
    "，家里老人急救电话都打不出去，关系到生命安全",
]


@lru_cache(maxsize=1)
def _to_traditional() -> Any:  # the OpenCC converter (untyped)
    import opencc

    return opencc.OpenCC("s2t")


@dataclass(order=True)
class Scheduled:
    """One message to send: when (seconds after the start), its key and value, and what it is."""

    at: float
    seq: int
    key: bytes = field(compare=False)
    value: bytes = field(compare=False)
    kind: str = field(compare=False, default="valid")
    event_id: str | None = field(compare=False, default=None)


@dataclass
class Shares:
    """How much of the traffic is deliberately bad."""

    malformed: float = 0.01
    duplicate: float = 0.01
    out_of_order: float = 0.02
    late: float = 0.02
    traditional: float = 0.3
    repeat_customer: float = 0.15
    severe: float = 0.04


class Simulator:
    """A seeded source of complaint traffic; iterate `schedule(duration)` for messages in send order."""

    def __init__(
        self,
        start: datetime,
        rate: float,
        seed: int = 1,
        time_scale: float = 1.0,
        shares: Shares | None = None,
        id_prefix: str = "SIM",
        lifecycle: bool = True,
    ) -> None:
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.start = start
        self.rate = rate
        self.rng = random.Random(seed)
        self.time_scale = time_scale
        self.shares = shares or Shares()
        self.id_prefix = id_prefix
        self.lifecycle = lifecycle
        self._seq = 0
        self._tickets = 0
        self._repeaters = [f"C{seed:03d}R{i:04d}" for i in range(40)]
        self._incident: tuple[str, str, float, float, int] | None = None

    def inject_incident(self, city: str, at: float, duration: float, count: int) -> None:
        """Add an outage burst: `count` network complaints in `city` spread over `duration` s from `at`."""
        province = next((p for p, c in CITIES if c == city), city)
        self._incident = (province, city, at, duration, count)

    # -- generation -------------------------------------------------------------------------
    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _envelope(self, ticket_id: str, etype: str, at: float, data: dict[str, Any], suffix: str) -> dict[str, Any]:
        occurred = self.start + timedelta(seconds=at)
        return {
            "event_id": f"{ticket_id}:{suffix}",
            "type": etype,
            "ticket_id": ticket_id,
            "occurred_at": occurred.isoformat(),
            "schema_version": 1,
            "data": data,
        }

    def _content(self, category: Category) -> str:
        rng = self.rng
        text = rng.choice(TEMPLATES[category]).format(
            place=rng.choice(PLACES), days=rng.randint(2, 9), amount=rng.choice([30, 50, 88, 100, 199, 300])
        )
        if rng.random() < self.shares.severe and category is not Category.OTHER_GENERAL:
            text += rng.choice(SEVERE_SUFFIXES).format(big=rng.choice([5000, 8000, 20000]))
        if rng.random() < self.shares.traditional:
            text = _to_traditional().convert(text)
        return text

    def _customer(self) -> dict[str, Any]:
        rng = self.rng
        if rng.random() < self.shares.repeat_customer:
            cid = rng.choice(self._repeaters)
        else:
            cid = f"C{rng.randrange(10**9):09d}"
        tier = rng.choices(["ordinary", "vip", "enterprise"], weights=[85, 10, 5])[0]
        customer = {"id": cid, "tier": tier, "phone": f"1{rng.choice('3589')}{rng.randrange(10**9):09d}"}
        if rng.random() < 0.6:
            customer["name"] = rng.choice("王李張劉陳楊黃趙吳周") + rng.choice(["先生", "女士", "偉", "芳", "敏"])
        if rng.random() < 0.1:
            customer["id_number"] = (
                f"{rng.randrange(11, 65)}0101{rng.randrange(1960, 2005)}0{rng.randrange(1, 9)}{rng.randrange(10, 28)}{rng.randrange(1000):03d}{rng.choice('0123456789X')}"
            )
        return customer

    def complaint(
        self, at: float, category: Category | None = None, city: tuple[str, str] | None = None
    ) -> dict[str, Any]:
        rng = self.rng
        self._tickets += 1
        ticket_id = f"{self.id_prefix}-{self._tickets:08d}"
        category = category or rng.choices(list(CATEGORY_WEIGHTS), weights=list(CATEGORY_WEIGHTS.values()))[0]
        province, cty = city or rng.choice(CITIES)
        data = {
            "channel": rng.choices(list(CHANNEL_WEIGHTS), weights=list(CHANNEL_WEIGHTS.values()))[0].value,
            "customer": self._customer(),
            "region": {"province": province, "city": cty},
            "content": self._content(category),
            "service_type": "broadband"
            if "宽带" in TEMPLATES[category][0]
            else rng.choice(["mobile", "broadband", "iptv", "fixed"]),
            "first_contact_agent": f"A{rng.randrange(1, 400):04d}",
        }
        return self._envelope(ticket_id, "complaint.received", at, data, "received")

    def _lifecycle(self, received: dict[str, Any], at: float) -> list[tuple[float, dict[str, Any]]]:
        """The later events of one ticket, with their occurrence times (seconds from start)."""
        rng, scale, tid = self.rng, self.time_scale, received["ticket_id"]
        hour = 3600.0 * scale
        out: list[tuple[float, dict[str, Any]]] = []
        t = at + rng.uniform(0.05, 3.0) * hour
        out.append(
            (
                t,
                self._envelope(
                    tid, "ticket.responded", t, {"agent": received["data"]["first_contact_agent"]}, "responded"
                ),
            )
        )
        t += rng.uniform(0.01, 0.5) * hour
        out.append(
            (
                t,
                self._envelope(
                    tid,
                    "ticket.assigned",
                    t,
                    {"team": rng.choice(["frontline", "network_ops", "billing", "tech_support"])},
                    "assigned",
                ),
            )
        )
        if rng.random() < 0.2:
            t += rng.uniform(0.1, 2) * hour
            out.append((t, self._envelope(tid, "ticket.investigation_started", t, {}, "inv-start")))
            t += rng.uniform(1, 30) * hour
            out.append((t, self._envelope(tid, "ticket.investigation_completed", t, {}, "inv-done")))
        if rng.random() < 0.15:
            t += rng.uniform(0.1, 2) * hour
            out.append((t, self._envelope(tid, "ticket.waiting_customer", t, {"reason": "等待客户提供资料"}, "wait")))
            t += rng.uniform(0.5, 20) * hour
            out.append((t, self._envelope(tid, "ticket.customer_replied", t, {}, "replied")))
        if rng.random() < 0.05:
            t += rng.uniform(0.1, 2) * hour
            out.append(
                (
                    t,
                    self._envelope(
                        tid,
                        "ticket.regraded",
                        t,
                        {"grade": rng.choice(["L1", "L2", "L3"]), "reason": "人工复核"},
                        "regraded",
                    ),
                )
            )
        t += rng.uniform(1, 40) * hour
        out.append((t, self._envelope(tid, "ticket.resolved", t, {}, "resolved")))
        if rng.random() < 0.08:
            t += rng.uniform(1, 24) * hour
            out.append((t, self._envelope(tid, "ticket.reopened", t, {"reason": "客户不满意"}, "reopened")))
            t += rng.uniform(1, 24) * hour
            out.append((t, self._envelope(tid, "ticket.resolved", t, {}, "resolved-2")))
        t += rng.uniform(0.5, 26) * hour
        out.append((t, self._envelope(tid, "ticket.feedback_sent", t, {}, "feedback")))
        t += rng.uniform(2, 80) * hour
        score = rng.choices([5, 4, 3, 2, 1], weights=[55, 25, 10, 6, 4])[0]
        out.append((t, self._envelope(tid, "ticket.survey_completed", t, {"score": score}, "survey")))
        t += rng.uniform(0.1, 5) * hour
        out.append((t, self._envelope(tid, "ticket.closed", t, {}, "closed")))
        return out

    def _malformed(self, at: float) -> Scheduled:
        rng = self.rng
        tid = f"{self.id_prefix}-BAD-{self._next_seq()}"
        good = self._envelope(
            tid,
            "complaint.received",
            at,
            {
                "channel": "hotline",
                "customer": {"id": "C1", "tier": "ordinary", "phone": "13800138000"},
                "region": {"province": "廣東", "city": "廣州"},
                "content": "信号差",
            },
            "x",
        )
        kind = rng.randrange(8)
        if kind == 0:
            value = b""
        elif kind == 1:
            value = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
        elif kind == 2:
            value = json.dumps(good, ensure_ascii=False).encode()[: rng.randrange(5, 60)]
        elif kind == 3:
            good["occurred_at"] = "2026-11-23T10:00:00"  # naive: rejected
            value = json.dumps(good, ensure_ascii=False).encode()
        elif kind == 4:
            good["data"]["channel"] = "carrier_pigeon"
            value = json.dumps(good, ensure_ascii=False).encode()
        elif kind == 5:
            del good["data"]["customer"]
            value = json.dumps(good, ensure_ascii=False).encode()
        elif kind == 6:
            value = json.dumps([good]).encode()
        else:
            good["schema_version"] = "one"
            value = json.dumps(good, ensure_ascii=False).encode()
        return Scheduled(at, self._next_seq(), tid.encode(), value, "malformed")

    def schedule(self, duration: float) -> Iterator[Scheduled]:
        """Messages in send order for `duration` seconds of traffic (lifecycles may run later)."""
        rng, shares = self.rng, self.shares
        heap: list[Scheduled] = []
        t = 0.0
        burst: list[float] = []
        if self._incident:
            _, _, b_at, b_dur, b_count = self._incident
            burst = sorted(b_at + rng.uniform(0, b_dur) for _ in range(b_count))
        while t < duration or burst:
            t_next = t + rng.expovariate(self.rate)
            in_burst = bool(burst) and burst[0] <= t_next
            if in_burst:
                t = burst.pop(0)
            else:
                t = t_next
                if t >= duration:
                    if burst:
                        continue
                    break
            while heap and heap[0].at <= t:
                yield heapq.heappop(heap)
            if not in_burst and rng.random() < shares.malformed:
                yield self._malformed(t)
            if in_burst and self._incident:
                province, city, *_ = self._incident
                received = self.complaint(t, Category.TECHNICAL_NETWORK_QUALITY, (province, city))
            else:
                received = self.complaint(t)
            yield self._message(t, received, "incident" if in_burst else "valid")
            if not self.lifecycle:
                continue
            previous_at = t
            for occurred, event in self._lifecycle(received, t):
                send_at = occurred
                kind = "valid"
                if rng.random() < shares.out_of_order:
                    send_at = max(t, previous_at - rng.uniform(0.0, 0.5) * (occurred - previous_at + 1e-3))
                    kind = "out_of_order"
                elif rng.random() < shares.late:
                    send_at = occurred + rng.uniform(1, 60) * max(self.time_scale, 0.05)
                    kind = "late"
                previous_at = occurred
                msg = self._message(send_at, event, kind)
                heapq.heappush(heap, msg)
                if rng.random() < shares.duplicate:
                    heapq.heappush(
                        heap,
                        Scheduled(
                            send_at + rng.uniform(0.0, 2.0),
                            self._next_seq(),
                            msg.key,
                            msg.value,
                            "duplicate",
                            msg.event_id,
                        ),
                    )
            if rng.random() < shares.duplicate:
                yield Scheduled(
                    t,
                    self._next_seq(),
                    str(received["ticket_id"]).encode(),
                    json.dumps(received, ensure_ascii=False).encode(),
                    "duplicate",
                    received["event_id"],
                )
        while heap:
            yield heapq.heappop(heap)

    def _message(self, at: float, event: dict[str, Any], kind: str = "valid") -> Scheduled:
        return Scheduled(
            at,
            self._next_seq(),
            event["ticket_id"].encode(),
            json.dumps(event, ensure_ascii=False).encode(),
            kind,
            event["event_id"],
        )
