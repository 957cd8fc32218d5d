"""Configuration from defaults and TUSCAM_* variables, and the app factory."""

from __future__ import annotations

from pathlib import Path

import pytest

from app import config, create_app


def test_defaults_use_the_instance_folder(tmp_path: Path) -> None:
    cfg = config.load(tmp_path, environ={})
    assert cfg["DATABASE_URL"] == f"sqlite:///{tmp_path / 'tuscam.sqlite3'}"
    assert cfg["DATA_DIR"] == str(tmp_path / "data")
    assert cfg["UPLOAD_EXPIRY"] == 86400


def test_secret_key_is_generated_once_and_kept_private(tmp_path: Path) -> None:
    first = config.load(tmp_path, environ={})["SECRET_KEY"]
    second = config.load(tmp_path, environ={})["SECRET_KEY"]
    assert first == second and len(first) >= 32
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_environment_overrides(tmp_path: Path) -> None:
    cfg = config.load(
        tmp_path,
        environ={
            "TUSCAM_DATABASE_URL": "postgresql+psycopg://x/y",
            "TUSCAM_MAX_UPLOAD_BYTES": "1000",
            "TUSCAM_SECRET_KEY": "k",
            "TUSCAM_PROXY_FIX": "yes",
        },
    )
    assert cfg["DATABASE_URL"] == "postgresql+psycopg://x/y"
    assert cfg["MAX_UPLOAD_BYTES"] == 1000
    assert cfg["SECRET_KEY"] == "k" and cfg["PROXY_FIX"] is True


@pytest.mark.parametrize("value", ["-1", "1e3", "٥", " 5", "ten"])
def test_bad_numbers_in_the_environment_fail_loudly(tmp_path: Path, value: str) -> None:
    with pytest.raises(ValueError, match="TUSCAM_UPLOAD_EXPIRY"):
        config.load(tmp_path, environ={"TUSCAM_UPLOAD_EXPIRY": value})


def test_create_app_with_a_test_config(tmp_path: Path) -> None:
    app = create_app(
        {"TESTING": True, "DATABASE_URL": "sqlite://", "DATA_DIR": str(tmp_path / "d")}
    )
    assert app.testing
    assert (tmp_path / "d").is_dir()
    assert app.test_client().get("/healthz").json == {"status": "ok"}


def test_the_security_settings_have_their_documented_defaults_and_can_be_set(
    tmp_path: Path,
) -> None:
    cfg = config.load(tmp_path, environ={})
    assert (cfg["SESSION_HOURS"], cfg["LOGIN_MAX_FAILURES"]) == (12, 10)
    assert (cfg["LOGIN_MAX_FAILURES_PER_ADDRESS"], cfg["LOGIN_THROTTLE_SECONDS"]) == (50, 900)
    cfg = config.load(
        tmp_path, environ={"TUSCAM_SESSION_HOURS": "8", "TUSCAM_LOGIN_MAX_FAILURES": "5"}
    )
    assert (cfg["SESSION_HOURS"], cfg["LOGIN_MAX_FAILURES"]) == (8, 5)


def test_every_setting_is_in_the_readme_table() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    keys = [*config._INT_KEYS, *config._STR_KEYS, *config._BOOL_KEYS]
    missing = [k for k in keys if f"| `TUSCAM_{k}` |" not in readme]
    assert missing == []
