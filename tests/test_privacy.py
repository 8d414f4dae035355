import re

from hypothesis import given
from hypothesis import strategies as st

from ticketstream.privacy import mask_id_number, mask_json, mask_name, mask_phone, mask_text


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
