"""The settings object: environment, config file, bounds, and the trip to an export job."""

from __future__ import annotations

from pathlib import Path

import pytest

from rpacs.errors import InvalidInputError
from rpacs.settings import Settings


def test_defaults_without_environment(tmp_path: Path):
    settings = Settings.load({"RPACS_HOME": str(tmp_path)})
    assert settings.home == tmp_path
    assert settings.resolved_database_url == f"sqlite:///{tmp_path / 'rpacs.sqlite3'}"
    assert (settings.workers, settings.ae_title, settings.web_secure_cookie) == (0, "RPACS", False)


def test_environment_values_are_typed(tmp_path: Path):
    settings = Settings.load({
        "RPACS_HOME": str(tmp_path), "RPACS_WORKERS": " 3 ", "RPACS_WEB_SESSION_HOURS": "1.5",
        "RPACS_WEB_SECURE_COOKIE": "Yes", "RPACS_DATABASE_URL": "", "RPACS_UNRELATED": "x",
    })
    assert settings.workers == 3 and settings.web_session_hours == 1.5
    assert settings.web_secure_cookie is True
    assert settings.database_url is None  # empty means unset


def test_every_problem_is_reported_at_once_by_name_not_value(tmp_path: Path):
    with pytest.raises(InvalidInputError) as caught:
        Settings.load({"RPACS_HOME": str(tmp_path), "RPACS_WORKERS": "-1",
                       "RPACS_WEB_SECURE_COOKIE": "perhaps", "RPACS_AE_TITLE": "A" * 17,
                       "RPACS_DICOM_PORT": "70000", "RPACS_STUDY_TIMEOUT": "0"})
    assert caught.value.problems == [
        "setting RPACS_WORKERS: must be at least 0",
        "setting RPACS_WEB_SECURE_COOKIE: must be true or false",
        "setting RPACS_AE_TITLE: must be 1 to 16 characters long",
        "setting RPACS_DICOM_PORT: must be at most 65535",
        "setting RPACS_STUDY_TIMEOUT: must be greater than 0",
    ]
    assert "perhaps" not in str(caught.value)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e999", "eight"])
def test_a_number_setting_must_be_a_finite_number(tmp_path: Path, value: str):
    with pytest.raises(InvalidInputError, match="setting RPACS_STUDY_TIMEOUT: must be a number"):
        Settings.load({"RPACS_HOME": str(tmp_path), "RPACS_STUDY_TIMEOUT": value})
    # TOML has nan and inf literals, and integers too large for a float.
    (tmp_path / "rpacs.toml").write_text(
        f"study_timeout = {value if value != 'eight' else '1' + '0' * 400}\n"
        .replace("1e999", "inf"))
    with pytest.raises(InvalidInputError, match="setting RPACS_STUDY_TIMEOUT: must be a number"):
        Settings.load({"RPACS_HOME": str(tmp_path)})


def test_config_file_fills_what_the_environment_left_unset(tmp_path: Path):
    (tmp_path / "rpacs.toml").write_text('workers = 8\nae_title = "FILE"\nstudy_timeout = 4\n')
    settings = Settings.load({"RPACS_HOME": str(tmp_path), "RPACS_AE_TITLE": "ENV"})
    assert (settings.workers, settings.ae_title) == (8, "ENV")
    assert settings.study_timeout == 4.0 and isinstance(settings.study_timeout, float)
    assert Settings.load({"RPACS_HOME": str(tmp_path)}, workers=1).workers == 1


@pytest.mark.parametrize(("text", "message"), [
    ("workers = 'eight'\n", "setting RPACS_WORKERS: must be a whole number"),
    ("web_secure_cookie = 1\n", "setting RPACS_WEB_SECURE_COOKIE: must be true or false"),
    ("colour = 'blue'\n", "unknown setting(s) colour"),
    ("workers = \n", "config file"),
])
def test_bad_config_files_are_named(tmp_path: Path, text: str, message: str):
    config = tmp_path / "elsewhere.toml"
    config.write_text(text)
    with pytest.raises(InvalidInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Settings.load({"RPACS_HOME": str(tmp_path), "RPACS_CONFIG": str(config)})


def test_settings_survive_the_trip_to_an_export_job(tmp_path: Path):
    settings = Settings(home=tmp_path, database_url="sqlite:///x.db", workers=2,
                        web_secure_cookie=True)
    assert Settings.from_json(settings.to_json()) == settings


def test_settings_are_frozen(tmp_path: Path):
    settings = Settings(home=tmp_path)
    with pytest.raises(AttributeError):
        settings.workers = 4  # type: ignore[misc]
