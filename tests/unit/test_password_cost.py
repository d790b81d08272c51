"""Production hashes passwords at argon2's full recommended cost, whatever the tests do.

tests/conftest.py swaps in a cheap argon2id hasher for the test session (real argon2id, test-sized
parameters). Nothing outside the tests can: there is no setting for the cost, and a fresh
process (as `ketaclinic serve` starts) hashes with the library's RFC 9106 parameters.
"""

from __future__ import annotations

import subprocess
import sys

from argon2 import PasswordHasher, extract_parameters

from ketaclinic import config
from ketaclinic.services.accounts import auth

FULL = extract_parameters(PasswordHasher().hash("reference"))


def test_a_fresh_process_hashes_passwords_at_the_recommended_cost():
    code = (f"import {auth.__name__} as a; h = a.hash_password('pw-1'); "
            "assert a.verify_password(h, 'pw-1'); print(h)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    used = extract_parameters(out.stdout.strip())
    assert used == FULL
    assert used.memory_cost >= 65536 and used.time_cost >= 3  # RFC 9106, second choice


def test_the_test_sessions_cheap_hasher_is_the_tests_alone():
    assert extract_parameters(auth.hash_password("pw-1")).memory_cost < FULL.memory_cost
    # no KETACLINIC_* setting can lower the cost in a deployment
    names = " ".join(config.Settings.model_fields).lower()
    assert not any(word in names for word in ("argon", "hash_cost", "kdf", "memory_cost"))


def test_an_unknown_name_is_checked_against_a_hash_of_the_same_cost_as_a_real_one():
    # login() verifies a password for a name nobody has against this hash: at another cost,
    # the time of a failed login would tell which names exist.
    assert extract_parameters(auth._dummy_hash()) == extract_parameters(auth.hash_password("pw"))
