from __future__ import annotations

import pytest

from ketaclinic.config import SettingsError, load_settings


def test_the_default_database_is_a_sqlite_file_in_the_data_dir():
    s = load_settings({"KETACLINIC_DATA_DIR": "/tmp/kc"})
    assert s.effective_database_url == "sqlite:////tmp/kc/ketaclinic.sqlite3"


def test_a_placeholder_secret_is_refused_in_production_but_allowed_in_dev():
    with pytest.raises(SettingsError, match="placeholder"):
        load_settings({}).check_startup()
    load_settings({"KETACLINIC_ENV": "dev"}).check_startup()
    load_settings({"KETACLINIC_SECRET_KEY": "s" * 40}).check_startup()


def test_settings_come_only_from_the_mapping_given():
    s = load_settings({"KETACLINIC_PORT": "9001"})
    assert s.port == 9001


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        load_settings({"KETACLINIC_PORT": "eighty"})
