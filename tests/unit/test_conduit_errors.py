"""RealWorld's words for what is wrong with a body: pure mapping of validation errors."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bloghub.api.conduit.errors import field_errors
from bloghub.api.conduit.schemas import NewArticleIn, NewUserIn
from bloghub.auth.passwords import MIN_LENGTH


def errors_of(model: type[NewArticleIn] | type[NewUserIn], raw: str) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate_json(raw)
    return field_errors(caught.value)


def test_missing_empty_and_blank_fields_cant_be_blank() -> None:
    found = errors_of(NewArticleIn, '{"article": {"title": "", "description": "   "}}')
    assert found == {
        "title": ["can't be blank"],
        "description": ["can't be blank"],
        "body": ["can't be blank"],
    }
    assert errors_of(NewUserIn, "{}") == {"user": ["can't be blank"]}


def test_a_null_required_field_is_blank_as_on_an_update() -> None:
    """A create said "is invalid" for a null title where an update said "can't be blank":
    a front end showed two messages for one mistake."""
    found = errors_of(NewArticleIn, '{"article": {"title": null, "description": "d", "body": 5}}')
    assert found == {"title": ["can't be blank"], "body": ["is invalid"]}


def test_too_long_and_mistyped_fields_say_so() -> None:
    raw = '{"article": {"title": "%s", "description": 3, "body": "b"}}' % ("t" * 129)
    assert errors_of(NewArticleIn, raw) == {
        "title": ["is too long (maximum is 128 characters)"],
        "description": ["is invalid"],
    }


def test_the_cores_rules_are_given_in_their_own_words() -> None:
    short = '{"user": {"username": "ann", "email": "ann@example.com", "password": "short"}}'
    assert errors_of(NewUserIn, short)["password"] == [
        f"is too short (minimum is {MIN_LENGTH} characters)"
    ]
    weak = '{"user": {"username": "ann", "email": "ann@example.com", "password": "longenough"}}'
    assert errors_of(NewUserIn, weak)["password"] == ["password needs a digit, a symbol"]
