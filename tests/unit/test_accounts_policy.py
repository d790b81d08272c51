"""Password policy (ASVS V2.1), recovery codes and the secret box — pure functions."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ketaclinic.services.accounts import recovery_codes
from ketaclinic.services.accounts.password_policy import (
    MAX_PASSWORD,
    MIN_PASSWORD,
    password_problem,
)
from ketaclinic.services.secretbox import (
    SecretBox,
    SecretUnreadable,
    is_encrypted,
    stored_key_id,
    totp_context,
)

SECRET = "test-secret-" + "x" * 40
BASE32_KEY = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


# --- password policy ------------------------------------------------------------------------
@pytest.mark.parametrize("password", [
    "ride the tram to the blue clinic",  # a passphrase with spaces
    "🦄🦄🦄 unicorns at the chair 🦄",  # emoji and spaces are printable Unicode
    "Grüße aus der Klinik, Schwester",  # non-ASCII letters
    "nurse-password-1",  # the test suite's own passwords stay valid
    "x7#Qm2!vL9@pR4&k",
    "a" * 30 + "b" * 30 + "correct horse",  # long, with a long run inside a passphrase
])
def test_passwords_people_choose_are_accepted(password):
    assert password_problem(password, "nina") is None


@pytest.mark.parametrize("password, reason", [
    ("short-pw-11", "12–128 characters"),
    ("x" * (MAX_PASSWORD + 1), "12–128 characters"),
    ("password1234", "too common"),
    ("qwertyuiop123", "too common"),
    ("aaaaaaaaaaaaaa", "too common"),
    ("abababababababab", "too common"),
    ("123456789012", "too common"),
    ("9876543210987", "too common"),
    ("Password2026!", "common word"),
    ("P@ssw0rd2026!!", "common word"),
    ("Sunshine1234567", "common word"),
    ("Ketamine2026!!", "common word"),
    ("  Welcome!!2026  ", "common word"),
    ("nina1234567890", "username"),
    ("Nina-2026-2026-", "username"),
    ("tab\tinside the password", "control characters"),
    ("line\nbreak in the password", "control characters"),
])
def test_common_short_padded_or_personal_passwords_are_refused_with_a_reason(password, reason):
    problem = password_problem(password, "nina")
    assert problem is not None and reason in problem


def test_the_length_limits_are_12_and_128_characters_counted_as_typed():
    assert password_problem("q7#Lm2!vT9@", "u") is not None  # 11
    assert password_problem("q7#Lm2!vT9@w", "u") is None  # exactly 12
    long = ("ride the tram to the blue clinic " * 4)[:MAX_PASSWORD]
    assert len(long) == MAX_PASSWORD and password_problem(long, "u") is None
    emoji = "🦄🐴🌈✨🌙⭐🍀🎈🎉🎵🎨🎯"
    assert len(emoji) == 12 and len(emoji.encode()) > 40 and password_problem(emoji, "u") is None


@given(st.text(min_size=MIN_PASSWORD, max_size=MAX_PASSWORD))
def test_the_policy_never_crashes_and_always_answers_a_sentence_or_none(password):
    problem = password_problem(password, "someone")
    assert problem is None or (isinstance(problem, str) and problem)


# --- recovery codes -------------------------------------------------------------------------
def test_a_set_is_ten_distinct_codes_of_80_random_bits_in_four_groups():
    codes = recovery_codes.new_codes()
    assert len(codes) == 10 == len(set(codes))
    for code in codes:
        assert re.fullmatch(r"([0-9a-hjkmnp-tv-z]{4}-){3}[0-9a-hjkmnp-tv-z]{4}", code)
    assert len(recovery_codes.ALPHABET) == 32  # 16 symbols x 5 bits = 80 bits


def test_typing_a_code_is_forgiving_about_case_spaces_dashes_and_look_alike_letters():
    salt, digest = recovery_codes.seal("0123-4567-89ab-cdef")
    for typed in ("0123-4567-89ab-cdef", "0123 4567 89AB CDEF", "o123-4567-89ab-cdef",
                  "0123456789abcdef", " 0123-4567-89ab-cdef "):
        normalized = recovery_codes.normalize(typed)
        assert normalized and recovery_codes.matches(salt, digest, normalized)
    assert recovery_codes.normalize("0123-4567-89ab-cde") is None
    assert recovery_codes.normalize("123456") is None
    assert not recovery_codes.matches(salt, digest, "0123456789abcdeg")


def test_the_same_code_sealed_twice_gives_different_salts_and_digests():
    a, b = recovery_codes.seal("0123-4567-89ab-cdef"), recovery_codes.seal("0123-4567-89ab-cdef")
    assert a[0] != b[0] and a[1] != b[1]
    assert "0123" not in a[1]


def test_a_temporary_password_passes_the_policy():
    for _ in range(50):
        assert password_problem(recovery_codes.temporary_password(), "nina") is None


# --- the secret box ---------------------------------------------------------------------------
def test_a_secret_round_trips_and_the_stored_form_never_contains_it():
    box = SecretBox.for_secrets(SECRET)
    stored = box.encrypt(BASE32_KEY, totp_context(7))
    assert is_encrypted(stored) and stored_key_id(stored) == box.current_id
    assert BASE32_KEY not in stored and BASE32_KEY.lower() not in stored.lower()
    assert box.decrypt(stored, totp_context(7)) == BASE32_KEY
    assert box.encrypt(BASE32_KEY, totp_context(7)) != stored  # a fresh nonce each time


def test_a_secret_copied_to_another_users_row_does_not_decrypt():
    box = SecretBox.for_secrets(SECRET)
    stored = box.encrypt(BASE32_KEY, totp_context(7))
    with pytest.raises(SecretUnreadable, match="integrity"):
        box.decrypt(stored, totp_context(8))


def test_a_tampered_value_fails_closed_without_showing_the_value():
    box = SecretBox.for_secrets(SECRET)
    stored = box.encrypt(BASE32_KEY, totp_context(7))
    flipped = stored[:-2] + ("A" if stored[-2] != "A" else "B") + stored[-1]
    for bad in (flipped, stored[:-10], stored + "x", "v1." + box.current_id + ".!!!!"):
        with pytest.raises(SecretUnreadable) as caught:
            box.decrypt(bad, totp_context(7))
        assert BASE32_KEY not in str(caught.value)


def test_a_plaintext_or_foreign_key_value_is_refused_and_names_the_key_ids():
    box = SecretBox.for_secrets(SECRET)
    with pytest.raises(SecretUnreadable, match="not encrypted"):
        box.decrypt(BASE32_KEY, totp_context(7))
    other = SecretBox.for_secrets("another-secret-" + "y" * 40)
    stored = other.encrypt(BASE32_KEY, totp_context(7))
    with pytest.raises(SecretUnreadable, match=f"id {other.current_id}.*{box.current_id}"):
        box.decrypt(stored, totp_context(7))


def test_a_previous_key_still_decrypts_so_values_can_be_re_encrypted():
    old_secret = "old-secret-" + "z" * 40
    stored = SecretBox.for_secrets(old_secret).encrypt(BASE32_KEY, totp_context(3))
    rotated = SecretBox.for_secrets(SECRET, old_secret)
    assert not rotated.is_current(stored)
    assert rotated.decrypt(stored, totp_context(3)) == BASE32_KEY
    fresh = rotated.encrypt(BASE32_KEY, totp_context(3))
    assert rotated.is_current(fresh)
    assert SecretBox.for_secrets(SECRET).decrypt(fresh, totp_context(3)) == BASE32_KEY
