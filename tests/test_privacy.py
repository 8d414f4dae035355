import re

from hypothesis import given
from hypothesis import strategies as st

from ticketstream.privacy import mask_id_number, mask_json, mask_name, mask_phone, mask_text
from ticketstream.settings import Settings


def test_mask_shapes():
    assert mask_phone("13812345678") == "138****5678"
    assert mask_id_number("11010119900307123X") == "110***********123X"
    assert mask_name("張三豐") == "張**"
    assert mask_text("電話 +86 138-1234-5678 郵箱 li.si@example.com") == "電話 +86 138****5678 郵箱 l***@example.com"


def test_mask_json_masks_personal_fields_by_name_and_text_everywhere():
    masked = mask_json(
        {
            "customer": {"name": "李四", "phone": "13912345678", "address": "廣州市天河區體育西路1號"},
            "content": "身份證440101199001011234丟了",
            "n": [{"mobile": 13700000000}],
        }
    )
    assert masked["customer"] == {"name": "李*", "phone": "139****5678", "address": "廣州市天河區***"}
    assert "440101199001011234" not in masked["content"]
    assert masked["n"][0]["mobile"] == "137****0000"


mobiles = st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True)
ids = st.from_regex(r"[1-9][0-9]{16}[0-9X]", fullmatch=True)
filler = st.text(alphabet=st.characters(blacklist_categories=("Nd",)), max_size=20)


@given(st.lists(st.tuples(filler, st.one_of(mobiles, ids)), min_size=1, max_size=5), filler)
def test_no_phone_or_id_survives_masking_in_free_text(parts, tail):
    text = "".join(a + b for a, b in parts) + tail
    masked = mask_text(text)
    for _, secret in parts:
        assert secret not in masked
    assert not re.search(r"(?<![0-9])1[3-9][0-9]{9}(?![0-9])", masked)


def test_personal_fields_are_known_by_any_spelling_of_their_name():
    from ticketstream.privacy import personal_kind

    spellings = {
        "id": ["id_number", "idNumber", "ID-Card", "id_no", "nationalId", "身份证号", "身份證號", "身份證號碼"],
        "phone": ["phone", "contact_phone", "mobilePhone", "电话", "聯繫電話", "手機號"],
        "name": ["name", "customerName", "customer_name", "contact", "姓名", "聯絡人", "客戶姓名"],
        "address": ["address", "Addr", "地址", "聯繫地址"],
        "email": ["email", "E-mail", "郵箱", "邮箱"],
    }
    for kind, keys in spellings.items():
        for key in keys:
            assert personal_kind(key) == kind, key
    for key in ["id", "ticket_id", "channel_name", "team", "content", "", None]:
        assert personal_kind(key) is None, key


def test_fields_a_channel_named_its_own_way_are_masked_in_dead_letters():
    from ticketstream.privacy import mask_keyed_text

    record = {"customer": {"idNo": "11010119900307123X", "customerName": "歐陽明珠", "聯繫電話": "13912345678"}}
    masked = mask_json(record)["customer"]
    assert masked == {"idNo": "110***********123X", "customerName": "歐***", "聯繫電話": "139****5678"}
    broken = '{"ticket_id": "T-1", "客戶姓名": "歐陽明珠", "note": "ok", "contactName": "歐陽明'  # cut mid-value
    text = mask_keyed_text(broken)
    assert "歐陽明" not in text and '"客戶姓名": "歐***"' in text and '"note": "ok"' in text
    assert '"ticket_id": "T-1"' in text


def test_the_work_queue_copy_drops_id_fields_of_any_name_and_masks_id_numbers_in_extras():
    import dataclasses

    from tests.test_pii_everywhere import seeded
    from ticketstream.engines import triage_engine
    from ticketstream.schemas.events import Customer, Event
    from ticketstream.schemas.tickets import TRIAGED
    from ticketstream.settings import Settings
    from ticketstream.workqueue import work_queue_copy

    record, _ = triage_engine(Settings()).triage(Event.model_validate(seeded("T-8", content="寬帶斷網")), [])
    plain = dataclasses.replace(record, customer=Customer(id="C-1", tier="ordinary", phone="13912345678"))
    assert work_queue_copy(plain) is plain  # nothing to drop: the record itself
    odd = Customer.model_validate(
        {
            "id": "C-1",
            "tier": "ordinary",
            "phone": "13912345678",
            "身份證號": "110101199003071234",
            "備註": "證件 11010119900307123X",
            "vip_note": "老客戶",
        }
    )
    queued = work_queue_copy(dataclasses.replace(record, customer=odd))
    data = TRIAGED.dump_json(queued).decode()
    assert "110101199003071234" not in data and "11010119900307123X" not in data and "身份證號" not in data
    assert "13912345678" in data and "老客戶" in data and "110***********123X" in data


def test_a_broken_value_of_another_field_does_not_hide_the_name_after_it():
    from ticketstream.privacy import mask_keyed_text, personal_kind

    for broken in (
        '{"attachment": "D:\\uploads\\", "name": "張三豐", "x": 1',  # a bad escape: why it does not parse
        '{"note": "abc, "name": "張三豐", "x": 1',  # a missing closing quote
        '{"content": "he wrote "name": "張三豐" here"}',
        '{"contact": "x, "name": "張三豐"}',  # a personal value left open: its quote opens the next key
        '{"address": "D:\\uploads\\", "name": "張三豐"}',
        '{"note": "a "name": "b, "name": "張三豐"}',
        '{"addr": "tel": "張三豐"}',  # a personal key without a value
    ):
        assert "張三豐" not in mask_keyed_text(broken), broken
    assert personal_kind("phone" * 13) is None  # no personal name is that long


def test_the_work_queue_copy_finds_id_numbers_at_any_depth_of_the_extras():
    import dataclasses

    from tests.test_pii_everywhere import seeded
    from ticketstream.engines import triage_engine
    from ticketstream.schemas.events import Customer, Event
    from ticketstream.schemas.tickets import TRIAGED
    from ticketstream.workqueue import work_queue_copy

    record, _ = triage_engine(Settings()).triage(Event.model_validate(seeded("T-7", content="寬帶斷網")), [])
    for extra in (
        {"contact": {"idNumber": "110101199003071234", "tel_note": "晚上"}},
        {"docs": ["110101199003071234"]},
        {"证件号码": 110101199003071234},
        {"ref": 110101199003071234},
        {"ref": 110101199003071234.0},
        {"110101199003071234": "a key"},
    ):
        odd = Customer.model_validate({"id": "C-1", "tier": "ordinary", **extra})
        data = TRIAGED.dump_json(work_queue_copy(dataclasses.replace(record, customer=odd))).decode()
        assert "110101199003071234" not in data, extra
