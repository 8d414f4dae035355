"""The learned triage model and the grader around it: amounts, enquiries by topic, the model file,
training and evaluation from the command line."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.factories import received
from tests.harness import REPO
from ticketstream.schemas.events import Category, Channel, Event, Grade, Tier
from ticketstream.triage.engine import TriageEngine
from ticketstream.triage.grading import GradeInputs, amounts_in, chinese_number
from ticketstream.triage.model import ModelFileError, load_model, shipped_model
from ticketstream.triage.text import normalize
from ticketstream.triage.training import LabelledExample, TrainingParams, train

ENGINE = TriageEngine()
DIGITS = "零一二三四五六七八九"


@pytest.fixture
def received_event():
    return lambda text: Event.model_validate(received("T-1", content=text))


def chinese(n: int) -> str:
    """A reference rendering of 1 <= n < 10**8 in Chinese numerals (一万零五十, 十二万, 三千五百)."""

    def section(m: int) -> str:
        out, gap = "", False
        for unit, name in ((1000, "千"), (100, "百"), (10, "十"), (1, "")):
            d = m // unit % 10
            if d == 0:
                gap = gap or bool(out)
                continue
            out += ("零" if gap else "") + DIGITS[d] + name
            gap = False
        return out

    if n < 10_000:
        text = section(n)
    else:
        high, low = divmod(n, 10_000)
        text = section(high) + "万" + (("零" if low < 1000 else "") + section(low) if low else "")
    return text[1:] if text.startswith("一十") else text


@given(st.integers(1, 99_999_999))
def test_chinese_numerals_read_back(n):
    assert chinese_number(chinese(n)) == n


@given(st.integers(1, 99_999_999), st.sampled_from(["元", "块", "塊", "多元", "多块钱", " 元", "rmb"]))
def test_amounts_in_any_common_form(n, unit):
    for written in (f"{n}{unit}", f"{n:,}{unit}", f"{chinese(n)}{unit}"):
        assert float(n) in amounts_in(normalize(f"这个月被扣了{written}，太离谱")), written


@given(st.integers(1, 9), st.integers(1, 9))
def test_colloquial_units_are_read_as_people_say_them(a, b):
    assert amounts_in(normalize(f"損失{DIGITS[a]}萬{DIGITS[b]}")) == [a * 10_000 + b * 1_000]
    assert amounts_in(normalize(f"損失{DIGITS[a]}千{DIGITS[b]}")) == [a * 1_000 + b * 100]
    assert amounts_in(normalize(f"损失{a}万{b}")) == [a * 10_000 + b * 1_000]
    assert amounts_in(normalize(f"被骗{a}萬多")) == [a * 10_000]
    assert amounts_in(normalize(f"多收了{a}.{b}万")) == [a * 10_000 + b * 1_000]
    assert amounts_in(normalize(f"扣了{a}k")) == [a * 1_000]


@given(
    st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True),
    st.sampled_from(["户", "米", "次", "个", "人", "天", "G", "兆"]),
    st.integers(1, 99),
)
def test_counts_and_phone_numbers_are_not_money(phone, unit, n):
    assert amounts_in(normalize(f"我的号码{phone}，上网卡")) == []
    assert amounts_in(normalize(f"小区里{n}万{unit}都受影响")) == []
    assert amounts_in(normalize("千万别再扣费了，万一再出错")) == []


@pytest.mark.parametrize(
    "text",
    [
        "被多扣了8,600多元",
        "一共损失了5萬多",
        "被骗走一萬二",
        "乱扣费扣了三千五百元又扣了一千五百元以上",
        "賠我 6000 蚊",
    ],
)
def test_a_major_loss_in_any_form_is_l1(text):
    evidence = ENGINE.evidence(text)
    decision = ENGINE.grader.grade(
        evidence.normalized,
        evidence.signals,
        GradeInputs(
            Category.BUSINESS_TARIFF_BILLING, Channel.HOTLINE, Tier.ORDINARY, model_grade=evidence.grade_opinion
        ),
    )
    if "三千五百" in text:  # two amounts below the line: the largest counts, not their sum
        assert decision.grade is not Grade.L1
    else:
        assert decision.grade is Grade.L1 and any("major_loss" in r for r in decision.reasons)


ENQUIRIES = {
    Category.SERVICE_ATTITUDE: "想表揚一下營業廳的王小姐，服務很耐心，建議公司給她嘉獎",
    Category.SERVICE_EFFICIENCY: "请问营业厅一般几点人少一点？想去办业务不想排太久的队",
    Category.SERVICE_CONTENT: "请问你们宣传的那个老用户回馈活动具体有哪些权益？想了解一下",
    Category.TECHNICAL_NETWORK_QUALITY: "請問我們小區什麼時候能覆蓋5G信號？想了解一下規劃",
    Category.TECHNICAL_EQUIPMENT_FAULT: "请问光猫的指示灯分别代表什么意思？想自己看懂",
    Category.TECHNICAL_SYSTEM_ISSUE: "建議你們的APP增加深色模式，晚上看著舒服一點",
    Category.BUSINESS_PLAN_CHANGE: "请问我现在的套餐下个月可以换成129元的那个吗？想咨询一下",
    Category.BUSINESS_TARIFF_BILLING: "想咨询一下账单上的“增值业务费”是什么费用",
    Category.BUSINESS_HANDLING: "請問寬帶移機需要帶什麼資料？下個月搬家",
    Category.OTHER_COMPLAINT_HANDLING: "请问我上周提交的投诉现在处理到哪一步了？想查一下进度",
    Category.OTHER_PRIVACY: "请问怎么关闭营销短信？想咨询一下如何设置不接收推广信息",
}


@pytest.mark.parametrize(("category", "text"), list(ENQUIRIES.items()))
def test_an_enquiry_is_classified_by_its_topic_and_graded_l4(category, text, received_event):
    record, _ = ENGINE.triage(received_event(text), [])
    assert record.category is category, record.evidence
    assert record.grade is Grade.L4, record.grade_reasons


@pytest.mark.parametrize(
    "text",
    [
        "为什么又多扣了我50块？你们能不能管管？",
        "网速慢成这样有没有人管啊？还能不能用了？",
        "客服态度这么差，可不可以换个人接电话？",
    ],
)
def test_question_words_alone_are_no_enquiry(text, received_event):
    record, _ = ENGINE.triage(received_event(text), [])
    assert record.grade is not Grade.L4, record.grade_reasons


@pytest.mark.parametrize(
    "text", ["屋企上唔到網成日都係咁，今日成日都冇得用", "家里网完全上不了，一整天了", "電視盒開唔到機，成晚睇唔到電視"]
)
def test_paraphrased_interruptions_are_urgent(text, received_event):
    record, _ = ENGINE.triage(received_event(text), [])
    assert record.grade is Grade.L2, record.grade_reasons


def test_every_triage_record_names_its_model(received_event):
    record, _ = ENGINE.triage(received_event("家里宽带断网三天了"), [])
    assert record.model_version == shipped_model().version and record.model_version.startswith("lr1-")
    assert any(e.startswith("model ") for e in record.evidence)


# -- the model file ----------------------------------------------------------------------------

TOY = [
    LabelledExample(content=text, category=cat, content_grade=grade, source=f"s{i % 3}")
    for i, (text, cat, grade) in enumerate(
        [
            ("宽带断网了上不了网", Category.TECHNICAL_NETWORK_QUALITY, Grade.L2),
            ("网速慢看视频卡", Category.TECHNICAL_NETWORK_QUALITY, Grade.L3),
            ("晚上网速慢", Category.TECHNICAL_NETWORK_QUALITY, Grade.L3),
            ("话费多扣了钱", Category.BUSINESS_TARIFF_BILLING, Grade.L3),
            ("账单多扣费", Category.BUSINESS_TARIFF_BILLING, Grade.L3),
            ("请问账单怎么看", Category.BUSINESS_TARIFF_BILLING, Grade.L4),
            ("宽带断网一天", Category.TECHNICAL_NETWORK_QUALITY, Grade.L2),
            ("请问话费怎么查", Category.BUSINESS_TARIFF_BILLING, Grade.L4),
        ]
    )
]


@pytest.fixture(scope="module")
def toy_model():
    model, reports = train(TOY, TrainingParams(min_df=1, folds=3))
    assert reports["category"].examples == 8 and set(reports["content_grade"].labels) == {"L2", "L3", "L4"}
    return model


def test_a_model_file_round_trips(tmp_path, toy_model):
    path = tmp_path / "model.npz"
    toy_model.save(path)
    loaded = load_model(path)
    assert loaded.version == toy_model.version and loaded.vocabulary == toy_model.vocabulary
    for text in ("家里断网了", "多扣了话费", "请问怎么查账单", "xyz"):
        a, b = toy_model.predict("category", normalize(text)), loaded.predict("category", normalize(text))
        assert a.label == b.label and a.probability == pytest.approx(b.probability, abs=1e-5)
    assert toy_model.predict("category", normalize("家里宽带断网")).label == "technical.network_quality"


def test_training_is_reproducible(toy_model):
    again, _ = train(TOY, TrainingParams(min_df=1, folds=3))
    assert again.version == toy_model.version


def test_a_bad_model_file_is_refused_naming_the_file_and_problem(tmp_path, toy_model):
    with pytest.raises(ModelFileError, match="missing.npz: no such model file"):
        load_model(tmp_path / "missing.npz")
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ModelFileError, match="corrupt.npz: not a ticketstream model file"):
        load_model(corrupt)
    good = tmp_path / "good.npz"
    toy_model.save(good)
    arrays = dict(np.load(good, allow_pickle=False))
    header = json.loads(str(arrays["header"]))
    future = tmp_path / "future.npz"
    np.savez(future, **{**arrays, "header": np.array(json.dumps({**header, "format": 99}))})
    with pytest.raises(ModelFileError, match="future.npz: model format 99, this release reads format 1"):
        load_model(future)
    headless = tmp_path / "headless.npz"
    np.savez(headless, **{**arrays, "header": np.array(json.dumps({**header, "heads": ["category"]}))})
    with pytest.raises(ModelFileError, match="headless.npz: the model has no content_grade head"):
        load_model(headless)
    skewed = tmp_path / "skewed.npz"
    np.savez(skewed, **{**arrays, "category.coef": arrays["category.coef"][:-1]})
    with pytest.raises(ModelFileError, match="skewed.npz: the category head's weights do not fit"):
        load_model(skewed)


def cli(*args: str, env: dict | None = None, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ticketstream.workers.cli", *args],
        cwd=REPO,
        input=stdin,
        capture_output=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def test_a_worker_or_command_with_a_bad_model_stops_with_a_clear_error(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_text("not a model")
    result = cli("classify", env={"TICKETSTREAM_TRIAGE_MODEL": str(bad)}, stdin=b'{"content": "x"}\n')
    assert result.returncode == 2
    assert f"{bad}: not a ticketstream model file".encode() in result.stderr
    assert b"Traceback" not in result.stderr


def test_train_then_classify_with_the_new_model(tmp_path):
    examples = tmp_path / "examples.jsonl"
    examples.write_text(
        "\n".join(json.dumps(e.model_dump(mode="json", exclude_none=True), ensure_ascii=False) for e in TOY),
        encoding="utf-8",
    )
    model = tmp_path / "model.npz"
    result = cli("triage", "train", "--examples", str(examples), "--out", str(model), "--min-df", "1")
    assert result.returncode == 0, result.stderr.decode()
    version = load_model(model).version
    assert f"model_version {version}".encode() in result.stdout
    out = cli("classify", env={"TICKETSTREAM_TRIAGE_MODEL": str(model)}, stdin='{"content": "家里断网了"}\n'.encode())
    assert json.loads(out.stdout)["model_version"] == version


def test_evaluate_prints_accuracy_per_category_and_confusion(tmp_path):
    labelled = tmp_path / "labelled.jsonl"
    rows = [
        {"content": "家里宽带断网三天了", "category": "technical.network_quality", "grade": "L2"},
        {"content": "这个月话费莫名其妙多扣了100元", "category": "business.tariff_billing", "grade": "L3"},
        {"content": "营业厅门口施工太吵了", "category": "business.tariff_billing", "grade": "L3"},
    ]
    labelled.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    text = cli("triage", "evaluate", str(labelled))
    assert text.returncode == 0, text.stderr.decode()
    out = text.stdout.decode()
    assert "category accuracy: 66.7% of 3" in out and "grade accuracy: 100.0% of 3" in out
    assert "category confusion" in out and "technical.network_quality" in out
    report = json.loads(cli("triage", "evaluate", str(labelled), "--format", "json").stdout)
    assert report["category_accuracy"] == pytest.approx(2 / 3, abs=1e-3)
    assert report["per_category"]["business.tariff_billing"]["recall"] == 0.5
    missing = cli("triage", "evaluate", str(tmp_path / "nope.jsonl"))
    assert missing.returncode == 2 and b"nope.jsonl: cannot read" in missing.stderr
