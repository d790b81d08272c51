from __future__ import annotations

import secrets

import pytest

from ketaclinic.config import SettingsError, estimated_entropy_bits, load_settings


def test_the_default_database_is_a_sqlite_file_in_the_data_dir():
    s = load_settings({"KETACLINIC_DATA_DIR": "/tmp/kc"})
    assert s.effective_database_url == "sqlite:////tmp/kc/ketaclinic.sqlite3"


def test_a_placeholder_secret_is_refused_in_production_and_test_but_allowed_in_dev():
    for env in ("production", "test"):
        with pytest.raises(SettingsError, match="placeholder"):
            load_settings({"KETACLINIC_ENV": env}).check_startup()
    load_settings({"KETACLINIC_ENV": "dev"}).check_startup()
    load_settings({"KETACLINIC_SECRET_KEY": secrets.token_urlsafe(48)}).check_startup()


@pytest.mark.parametrize("secret", ["s" * 40, "test-secret-" + "x" * 40, "0123456789" * 5,
                                    "abcd" * 16, secrets.token_urlsafe(12)],
                         ids=["one-letter", "old-test-secret", "digits", "repeats", "96-bits"])
def test_a_long_but_guessable_secret_is_refused_outside_dev(secret):
    for env in ("production", "test"):
        with pytest.raises(SettingsError, match="bits estimated"):
            load_settings({"KETACLINIC_ENV": env, "KETACLINIC_SECRET_KEY": secret}).check_startup()


@pytest.mark.parametrize("secret", [secrets.token_urlsafe(32), secrets.token_urlsafe(48),
                                    secrets.token_hex(32), secrets.token_bytes(32).hex().upper()],
                         ids=["urlsafe-32", "urlsafe-48", "hex-32", "HEX-32"])
def test_a_random_secret_of_the_usual_recipes_is_accepted(secret):
    assert estimated_entropy_bits(secret) >= 128
    load_settings({"KETACLINIC_ENV": "test", "KETACLINIC_SECRET_KEY": secret}).check_startup()


def test_settings_come_only_from_the_mapping_given():
    s = load_settings({"KETACLINIC_PORT": "9001"})
    assert s.port == 9001


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        load_settings({"KETACLINIC_PORT": "eighty"})
