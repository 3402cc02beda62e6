"""Sealing personal data: what the right key opens, and that anything else fails closed."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bloghub.auth.sealing import MasterKey, Unreadable, new_user_key, seal, unseal
from bloghub.events.base import envelop, registry
from bloghub.events.codec import decode, encode
from bloghub.events.personal import UnreadablePersonalFields, reveal, reveal_text, seal_event
from bloghub.events.users import PasswordChanged, ProfileUpdated, UserRegistered
from bloghub.ids import new_id_str

HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2VjcmV0LXNhbHQ$secret-hash-value"


@given(st.dictionaries(st.sampled_from(["email", "phone", "about_me"]), st.text()))
def test_sealed_fields_round_trip_with_their_key(fields: dict[str, str]) -> None:
    key, user = new_user_key(), new_id_str()
    assert unseal(key, user, "user.registered", seal(key, user, "user.registered", fields)) == (
        fields
    )


def test_another_key_a_missing_key_or_an_altered_token_read_nothing() -> None:
    key, user = new_user_key(), new_id_str()
    token = seal(key, user, "user.registered", {"email": "a@example.com"})
    with pytest.raises(Unreadable):
        unseal(new_user_key(), user, "user.registered", token)
    with pytest.raises(Unreadable):
        unseal(None, user, "user.registered", token)
    tampered = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    with pytest.raises(Unreadable):
        unseal(key, user, "user.registered", tampered)
    with pytest.raises(Unreadable):
        unseal(key, user, "user.registered", "not a token")


def test_a_sealed_value_is_bound_to_its_user_and_purpose() -> None:
    key, user = new_user_key(), new_id_str()
    token = seal(key, user, "user.registered", {"email": "a@example.com"})
    with pytest.raises(Unreadable):
        unseal(key, new_id_str(), "user.registered", token)
    with pytest.raises(Unreadable):
        unseal(key, user, "user.profile_updated", token)


def test_the_master_key_opens_only_what_it_wrapped() -> None:
    user, key = new_id_str(), new_user_key()
    wrapped = MasterKey("one secret").wrap(user, key)
    assert MasterKey("one secret").unwrap(user, wrapped) == key
    assert key not in wrapped
    with pytest.raises(Unreadable):
        MasterKey("another secret").unwrap(user, wrapped)
    with pytest.raises(Unreadable):
        MasterKey("one secret").unwrap(new_id_str(), wrapped)


def test_a_sealed_event_holds_no_personal_field_in_clear_on_the_wire() -> None:
    user, key = new_id_str(), new_user_key()
    event = UserRegistered(user_id=user, email="someone@example.com", password_hash=HASH)
    value, _ = encode(envelop(seal_event(event, key), actor_id=user, request_id=None))
    assert b"someone@example.com" not in value
    assert b"secret-hash-value" not in value
    envelope = decode(value)
    assert envelope.version == 2
    read = registry.materialise(envelope)
    assert isinstance(read, UserRegistered)
    assert read.email is None
    assert reveal(read, key, erased=False) == event


def test_without_the_key_or_once_erased_an_event_reads_blank() -> None:
    user, key = new_id_str(), new_user_key()
    event = PasswordChanged(user_id=user, password_hash=HASH, via="password")
    sealed = seal_event(event, key)
    for blanked in (
        reveal(sealed, None, erased=False),
        reveal(sealed, new_user_key(), erased=False),
        reveal(sealed, key, erased=True),
        reveal(event, None, erased=True),  # written in clear before sealing: erased all the same
    ):
        assert blanked.password_hash is None
        assert blanked.sealed is None
        assert blanked.via == "password"  # what is not personal stays


def test_version_1_events_in_clear_still_read() -> None:
    user = new_id_str()
    payload = {"user_id": user, "email": "old@example.com", "password_hash": HASH}
    env = envelop(UserRegistered(user_id=user), actor_id=None, request_id=None)
    old = env._replace(version=1, payload=payload)
    read = registry.materialise(decode(encode(old)[0]))
    assert isinstance(read, UserRegistered)
    assert reveal(read, None, erased=False).email == "old@example.com"


def test_sealed_fields_that_do_not_fit_never_quote_their_values() -> None:
    user, key = new_id_str(), new_user_key()
    token = seal(key, user, "user.profile_updated", {"birthday": "secret-not-a-date"})
    event = ProfileUpdated(user_id=user, changed=["birthday"], sealed=token)
    with pytest.raises(UnreadablePersonalFields) as info:
        reveal(event, key, erased=False)
    assert "secret" not in str(info.value)
    assert info.value.__suppress_context__


def test_an_event_cannot_be_both_sealed_and_in_clear() -> None:
    body = orjson.dumps({"user_id": "u", "email": "x@example.com", "sealed": "v1.AAAA"})
    with pytest.raises(ValueError, match="no personal field in clear"):
        UserRegistered.model_validate_json(body)


def test_reading_text_fields_without_a_model_gives_what_reveal_gives() -> None:
    user, key = new_id_str(), new_user_key()
    clear = UserRegistered(user_id=user, email="someone@example.com", password_hash=HASH)
    sealed = seal_event(clear, key)
    for event, with_key, erased in (
        (sealed, key, False),
        (sealed, None, False),
        (sealed, new_user_key(), False),
        (sealed, key, True),
        (clear, None, False),
        (clear, None, True),
    ):
        revealed = reveal(event, with_key, erased=erased)
        assert reveal_text(event, with_key, erased=erased) == {
            "email": revealed.email,
            "password_hash": revealed.password_hash,
        }


def test_text_fields_that_are_not_text_never_quote_their_values() -> None:
    user, key = new_id_str(), new_user_key()
    token = seal(key, user, "user.registered", {"email": ["secret-in-a-list"]})
    with pytest.raises(UnreadablePersonalFields) as info:
        reveal_text(UserRegistered(user_id=user, sealed=token), key, erased=False)
    assert "secret" not in str(info.value)
