"""The web forms' errors: each tied to the field a person can change (WCAG 2.1 3.3.1), as
the browser suite (tests/browser) checks on the running site."""

from __future__ import annotations

import re

import pytest

from services.objection import api as objection_api
from services.publisher import api as publisher_api


@pytest.mark.parametrize(("path", "field"), [
    ("subject.id", "id"),
    ("subject", "id"),
    ("subject.type", "type"),
    ("record.record_id", "record_id"),
    ("record.department", "department"),
    ("contact", "contact"),
    ("commitment.signer_name", "signer_name"),
    ("commitment.text_version", "signer_name"),
    ("obligations.evidence.0", "evidence"),
    ("obligations", "declaration"),
])
def test_an_error_path_finds_its_form_field(path: str, field: str) -> None:
    assert objection_api.form_field(path) == field


def test_a_path_of_no_field_is_in_the_summary_only() -> None:
    found = objection_api.form_errors([
        {"field": "subject.id", "message": "must be 18 characters, got 17"},
        {"field": "body", "message": "too many requests"},
        {"field": "", "message": "已提交过相同的申请"}])
    assert found["field_errors"] == {"id": ["must be 18 characters, got 17"]}
    assert [(e["field"], e["label"]) for e in found["errors"]] == [
        ("id", "统一社会信用代码或身份证号"), ("", ""), ("", "")]


def _objection_form(**context: object) -> str:
    values = {"type": "enterprise", "id": "91440402MA4UXXXX0X", "department": "amr",
              "record_id": "R-1", "kind": "objection", "reason": "理由<b>", "contact": "",
              "signer_name": "", "signer_role": "", "declaration": "", "evidence": "",
              "department_options": [("amr", "市场监督管理局"), ("tax", "税务局")],
              "commitment_version": "v1", "commitment_text": "承诺", "errors": [],
              "field_errors": {}}
    return objection_api.TEMPLATES.env.get_template("form.html").render(
        **{**values, **context})


def test_the_objection_form_ties_each_error_to_its_field() -> None:
    html = _objection_form(**objection_api.form_errors([
        {"field": "subject.id", "message": "must be 18 characters"},
        {"field": "contact", "message": "not a phone number or e-mail"}]))
    for name in ("id", "contact"):
        control = re.search(rf'<(input|textarea)[^>]*id="f-{name}"[^>]*>', html)
        assert control is not None
        assert f'aria-describedby="f-{name}-error"' in control.group(0)
        assert 'aria-invalid="true"' in control.group(0)
        assert f'id="f-{name}-error"' in html
    assert '<a href="#f-id">' in html and 'role="alert"' in html
    # A field without an error is not marked; what was typed comes back, escaped.
    reason = re.search(r'<textarea[^>]*id="f-reason"[^>]*>', html)
    assert reason is not None and "aria-invalid" not in reason.group(0)
    assert "理由&lt;b&gt;</textarea>" in html


def test_the_objection_form_labels_every_control() -> None:
    html = _objection_form()
    ids = re.findall(r'<(?:input|select|textarea)[^>]*\bid="([^"]+)"', html)
    assert len(ids) == 11
    for control in ids:
        assert f'<label for="{control}">' in html
    assert 'role="alert"' not in html and 'aria-invalid="true"' not in html


def test_the_search_form_ties_its_error_to_the_field() -> None:
    html = publisher_api.TEMPLATES.env.get_template("search.html").render(
        q="珠海", result=None, lists={}, list_names={}, list_kinds={}, departments={},
        q_error="查询内容不能超过100个字，请缩短后重试。")
    field = re.search(r'<input[^>]*id="q"[^>]*>', html)
    assert field is not None
    assert 'aria-describedby="q-hint q-error"' in field.group(0)
    assert 'aria-invalid="true"' in field.group(0)
    assert '<p class="err" id="q-error">' in html and '<label for="q">' in html
    assert html.count("<h1") == 1
