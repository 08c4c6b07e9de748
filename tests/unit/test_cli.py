"""The CLI: help, check-config output and exit codes, secrets never printed."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from structlog.testing import capture_logs

from xesync import errors, events
from xesync.cli import app, handle_error

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config" / "xesync.example.toml"


def test_help_lists_commands():
    """xesync --help shows the command groups."""
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "check-config" in result.output
    assert "lab" in result.output


def test_check_config_on_the_example():
    """check-config on the example prints the effective config as JSON and exits 0."""
    result = CliRunner().invoke(app, ["check-config", "--config", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["tms"]["password"] == "<masked: file>"
    assert data["rooms"][0]["tms_system_id"] == 11
    assert "example-tms-password-not-a-secret" not in result.output


def test_check_config_reports_all_problems_and_exits_2(tmp_path):
    """Three mistakes are listed with key paths on stderr, and the exit code is 2."""
    text = EXAMPLE.read_text().replace("tms_system_id = 11", 'tms_system_id = "x"')
    text = text.replace('interval = "60s"', 'interval = "often"')
    text = text.replace("[metrics]", "[metrics]\nbogus = 1")
    (tmp_path / "secrets").symlink_to(EXAMPLE.parent / "secrets")
    path = tmp_path / "bad.toml"
    path.write_text(text)
    result = CliRunner().invoke(app, ["check-config", "--config", str(path)])
    assert result.exit_code == 2
    assert "3 configuration problem(s)" in result.stderr
    assert "rooms[0].tms_system_id: must be an integer" in result.stderr
    assert "sync.interval: must be a duration" in result.stderr
    assert "metrics.bogus: unknown key" in result.stderr
    assert "Traceback" not in result.output


def test_secret_from_env_never_printed_or_logged(tmp_path):
    """A secret given through an environment variable appears neither in output nor in logs."""
    text = EXAMPLE.read_text().replace(
        'password_file = "secrets/tms.password"', 'password_env = "XESYNC_TEST_TMS_PW"'
    )
    (tmp_path / "secrets").symlink_to(EXAMPLE.parent / "secrets")
    path = tmp_path / "env.toml"
    path.write_text(text)
    result = CliRunner().invoke(
        app,
        ["-v", "check-config", "--config", str(path)],
        env={"XESYNC_TEST_TMS_PW": "env-secret-do-not-leak"},
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["tms"]["password"] == "<masked: env>"
    assert "env-secret-do-not-leak" not in result.output


def test_config_from_environment_variable(tmp_path):
    """Without --config the path comes from $XESYNC_CONFIG."""
    result = CliRunner().invoke(app, ["check-config"], env={"XESYNC_CONFIG": str(tmp_path / "none.toml")})
    assert result.exit_code == 2
    assert "none.toml" in result.stderr


def test_lab_serve_refuses_non_loopback():
    """lab serve refuses a non-loopback host with a clear message and exit code 2."""
    result = CliRunner().invoke(app, ["lab", "serve", "--host", "0.0.0.0"])  # noqa: S104 - the refusal is the point
    assert result.exit_code == 2
    assert "loopback" in result.stderr


def test_lab_serve_write_config_needs_ews_and_tms(tmp_path):
    """--write-config with --only cms is refused, since the written config could not validate."""
    result = CliRunner().invoke(
        app, ["lab", "serve", "--only", "cms", "--write-config", str(tmp_path / "x.toml")]
    )
    assert result.exit_code == 2
    assert "--write-config needs the ews and tms simulators" in result.stderr
    assert not (tmp_path / "x.toml").exists()


def _error_classes() -> list[type[errors.XesyncError]]:
    return [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.XesyncError)]


def test_exit_code_2_means_a_configuration_or_usage_problem_only():
    """Every error class exits 2 exactly when it is a UserError, so a store or network failure never does."""
    classes = _error_classes()
    assert errors.StoreError in classes
    for cls in classes:
        assert (cls.exit_code == 2) == issubclass(cls, errors.UserError), cls.__name__


def test_handle_error_exit_codes():
    """The boundary maps config, busy store, broken store, guard, permanent and bug errors to their codes."""
    with capture_logs() as logs:
        codes = {
            "config": handle_error(errors.ConfigError(["x: bad"])),
            "busy": handle_error(errors.StoreBusyError("/s/x.db", 10)),
            "store": handle_error(errors.StoreError("/s/x.db", "not a usable SQLite database")),
            "guard": handle_error(errors.MassCancelRefusedError("aurora", 3)),
            "permanent": handle_error(errors.TmsFaultError("-1", "no")),
            "bug": handle_error(RuntimeError("the state store /s/x.db is closed")),
        }
    assert codes == {"config": 2, "busy": 75, "store": 74, "guard": 3, "permanent": 1, "bug": 1}
    unexpected = [e for e in logs if e["event"] == events.ERROR_UNEXPECTED]
    assert [e["error_type"] for e in unexpected] == ["RuntimeError"]
    assert "exc_info" in unexpected[0]


def test_check_config_lists_the_keys_not_yet_in_effect(monkeypatch):
    """check-config names every registry key on stderr only; with today's empty registry it names none."""
    from xesync.config import show  # noqa: PLC0415

    result = CliRunner().invoke(app, ["check-config", "--config", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    json.loads(result.stdout)
    assert show.NOT_YET_IN_EFFECT == ()  # the engine, licence proof and daemon read every key now
    assert "not yet in effect" not in result.stderr
    monkeypatch.setattr(show, "NOT_YET_IN_EFFECT", ("sync.dry_run", "metrics.port"))
    result = CliRunner().invoke(app, ["check-config", "--config", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    json.loads(result.stdout)
    listed = [line.strip()[2:] for line in result.stderr.splitlines() if line.startswith("  - ")]
    assert listed == ["metrics.port", "sync.dry_run"]
    assert "not yet in effect" in result.stderr


def test_check_config_refuses_a_filter_without_parentheses(tmp_path):
    """ldap.user_filter = "objectClass=user" exits 2 naming the key, as the daemon would refuse it."""
    text = EXAMPLE.read_text().replace(
        'user_filter = "(|(objectClass=user)(objectClass=inetOrgPerson))"', 'user_filter = "objectClass=user"'
    )
    assert 'user_filter = "objectClass=user"' in text
    (tmp_path / "secrets").symlink_to(EXAMPLE.parent / "secrets")
    path = tmp_path / "filter.toml"
    path.write_text(text)
    result = CliRunner().invoke(app, ["check-config", "--config", str(path)])
    assert result.exit_code == 2
    assert "ldap.user_filter: not an LDAP filter" in result.stderr
    assert result.stdout == ""


def test_lab_serve_takes_its_fixture_with_fixture_not_config(tmp_path):
    """lab serve names its fixture --fixture; --config there is no longer a lab option."""
    missing = str(tmp_path / "none.toml")
    fixture = CliRunner().invoke(app, ["lab", "serve", "--fixture", missing])
    assert fixture.exit_code == 2
    assert "none.toml" in fixture.stderr
    clash = CliRunner().invoke(app, ["lab", "serve", "--config", missing])
    assert clash.exit_code == 2
    assert "No such option '--config'" in clash.stderr


def test_one_version_number_from_the_package_metadata():
    """xesync --version prints the installed package's version, the one in pyproject.toml."""
    import tomllib  # noqa: PLC0415
    from importlib.metadata import version  # noqa: PLC0415

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"xesync, version {version('xesync')}"
    assert version("xesync") == declared
