"""The password policy for every password a person chooses (OWASP ASVS 4.0.3, V2.1).

- 12 to 128 characters, counted as typed: any printable Unicode, spaces and emoji included; no
  composition rules (no "one digit and one symbol"), nothing truncated or normalised away
  (argon2id hashes the whole string);
- not a common or breached password: a bundled list (``data/common_passwords.txt``) of common
  passwords of 12+ characters, and common words that are refused alone or padded with digits
  and symbols ("Password2026!", "P@ssw0rd123456");
- not the username or the clinic's own words padded the same way, not one character or a
  keyboard/alphabet run repeated ("aaaaaaaaaaaa", "123456789012", "qwertyuiopas").
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache
from pathlib import Path

MIN_PASSWORD = 12
MAX_PASSWORD = 128
_LIST = Path(__file__).with_name("data") / "common_passwords.txt"
# Words a clinic's staff reach for first; refused like the common words.
CLINIC_WORDS = frozenset({"ketamine", "esketamine", "spravato", "ketaclinic", "clinic",
                          "infusion", "nurse", "doctor", "prescriber", "admin", "analyst",
                          "password", "passwort", "welcome", "letmein", "changeme"})
_RUNS = ("abcdefghijklmnopqrstuvwxyz", "0123456789", "qwertyuiopasdfghjklzxcvbnm",
         "1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik9ol0p", "q1w2e3r4t5y6u7i8o9p0")
_LEET = str.maketrans({"@": "a", "4": "a", "3": "e", "0": "o", "$": "s", "5": "s", "7": "t",
                       "1": "i", "!": "i", "|": "i", "+": "t"})


@lru_cache(maxsize=1)
def _common() -> tuple[frozenset[str], frozenset[str]]:
    """(passwords refused as they are, words refused alone or padded), lower case."""
    whole: set[str] = set()
    words: set[str] = set(CLINIC_WORDS)
    for line in _LIST.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        (words if line.isalpha() else whole).add(line)
        if line.isalpha() and len(line) >= MIN_PASSWORD:
            whole.add(line)
    return frozenset(whole), frozenset(words)


def _core(password: str) -> str:
    """The password without the digits, symbols and spaces around it, in lower case."""
    text = password.lower()
    start, end = 0, len(text)
    while start < end and not text[start].isalpha():
        start += 1
    while end > start and not text[end - 1].isalpha():
        end -= 1
    return text[start:end]


def _is_run(text: str) -> bool:
    """One character repeated, a short pattern repeated, or a slice of a keyboard run."""
    if len(set(text)) <= 3:
        return True
    for run in _RUNS:
        for source in (run * 3, run[::-1] * 3):
            if text in source:
                return True
    return False


def password_problem(password: str | None, username: str = "") -> str | None:
    """Why ``password`` is refused (one readable sentence), or None if it is acceptable.

    Examples
    --------
    >>> password_problem("short")
    'the password must be 12–128 characters long'
    >>> password_problem("Password2026!")
    'the password is a common word with digits or symbols around it; choose another'
    >>> password_problem("ride the tram to the blue clinic") is None
    True
    """
    password = password or ""
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        return f"the password must be {MIN_PASSWORD}–{MAX_PASSWORD} characters long"
    if any(unicodedata.category(c) == "Cc" for c in password):
        return "the password may not contain control characters (tabs, line breaks)"
    lowered = password.lower()
    whole, words = _common()
    if lowered in whole or _is_run(lowered):
        return "the password is too common or too predictable; choose another"
    core = _core(password)
    user = (username or "").strip().lower()
    if user and (core == user or lowered.replace(" ", "") == user):
        return "the password may not be your username with digits or symbols around it"
    leet = core.translate(_LEET)
    candidates = {core, leet, leet.replace("i", "l"), _core(lowered.translate(_LEET))}
    for candidate in candidates:
        if len(candidate) >= 4 and candidate.isalpha() and candidate in words:
            return "the password is a common word with digits or symbols around it; choose another"
    return None
