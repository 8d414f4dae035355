"""The labelled-examples second opinion: used only where the phrase rules fall back."""

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.events import Category
from ticketstream.classify import Classifier, load_rules
from ticketstream.examples import Example, ExampleModel, load_examples, pairs
from ticketstream.policyfile import PolicyError
from ticketstream.text import normalize

TOY = [
    Example(content="营业厅的人把我晾在一边聊天", category=Category.SERVICE_ATTITUDE),
    Example(content="营业厅的人聊天不理顾客", category=Category.SERVICE_ATTITUDE),
    Example(content="家里电视盒子开不了机", category=Category.TECHNICAL_EQUIPMENT_FAULT),
    Example(content="电视盒子开机就死", category=Category.TECHNICAL_EQUIPMENT_FAULT),
]


def test_the_model_prefers_the_category_whose_examples_share_the_words():
    model = ExampleModel(TOY)
    text = normalize("營業廳的人一直在聊天")
    opinion = model.opinion(text)
    assert opinion is not None and opinion.category is Category.SERVICE_ATTITUDE
    assert 0.5 < opinion.posterior <= 1.0
    assert opinion.pairs and set(opinion.pairs) <= pairs(text) and model.opinion(text) == opinion
    assert model.opinion(normalize("电视盒子又开不了机")).category is Category.TECHNICAL_EQUIPMENT_FAULT


def test_no_known_words_means_no_opinion():
    assert ExampleModel(TOY).opinion(normalize("xyz")) is None


@given(st.text(max_size=200))
def test_any_text_gets_an_opinion_or_none_never_an_error(text):
    opinion = ExampleModel(TOY).opinion(normalize(text))
    assert opinion is None or 0.0 < opinion.posterior <= 1.0


def _rules(tmp_path: Path, examples: list[dict], **settings) -> Classifier:
    path = tmp_path / "examples.jsonl"
    path.write_text("\n".join(json.dumps(e, ensure_ascii=False) for e in examples), encoding="utf-8")
    return Classifier(load_rules().with_settings(examples_file=path, **settings))


def test_rules_that_fall_back_take_the_examples_opinion_and_say_so(tmp_path):
    # No phrase rule knows 晾在一边 or 聊天: the rules alone send it to manual triage.
    text = "营业厅的人把我晾在一边自己聊天"
    assert Classifier(load_rules().with_settings(use_examples=False)).classify(text).fallback
    classifier = _rules(tmp_path, [e.model_dump(mode="json") for e in TOY])
    result = classifier.classify(text)
    assert result.category is Category.SERVICE_ATTITUDE and not result.fallback
    assert result.evidence[0].startswith("similar to labelled examples")


def test_an_unsure_opinion_leaves_the_complaint_for_manual_triage(tmp_path):
    classifier = _rules(tmp_path, [e.model_dump(mode="json") for e in TOY], examples_min_posterior=1.0)
    result = classifier.classify("聊天的人不理，盒子开不了机")
    assert result.fallback and result.category is Category.OTHER_GENERAL


def test_rule_decisions_are_not_second_guessed(tmp_path):
    # The toy examples would call anything with 营业厅 attitude; a clear billing rule still wins.
    classifier = _rules(tmp_path, [e.model_dump(mode="json") for e in TOY])
    assert classifier.classify("营业厅乱扣费，多收了我话费").category is Category.BUSINESS_TARIFF_BILLING


def test_a_broken_examples_file_is_refused_with_its_line(tmp_path):
    path = tmp_path / "examples.jsonl"
    path.write_text('{"content": "信号差", "category": "technical.network_quality"}\n{"content": "x", "category": "no.such"}\n')
    with pytest.raises(PolicyError, match="line 2"):
        load_examples(path)
    with pytest.raises(PolicyError, match="no such file"):
        load_examples(tmp_path / "missing.jsonl")


def test_the_shipped_examples_load_and_cover_every_category():
    examples = load_examples()
    assert {e.category for e in examples} == set(Category)


def test_an_unsure_rule_decision_yields_to_a_sure_opinion_and_a_sure_one_does_not(tmp_path):
    text = "营业厅的人聊天还扣费"
    toy = [e.model_dump(mode="json") for e in TOY]
    by_rules = _rules(tmp_path, toy, use_examples=False).classify(text)
    assert by_rules.category is Category.BUSINESS_TARIFF_BILLING and not by_rules.fallback
    unsure = _rules(tmp_path, toy, examples_when_rules_below=min(1.0, by_rules.confidence + 0.01)).classify(text)
    assert unsure.category is Category.SERVICE_ATTITUDE
    assert unsure.evidence[0].startswith("similar to labelled examples")
    sure = _rules(tmp_path, toy, examples_when_rules_below=max(0.0, by_rules.confidence - 0.01)).classify(text)
    assert sure == by_rules
