"""scripts/pgcluster.py: a missing PostgreSQL skips the pass; a broken one fails it."""

import stat

import pytest

from scripts import pgcluster


@pytest.fixture
def plain_env(monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("COACHBOOK_REQUIRE_ALL", raising=False)
    monkeypatch.setattr(pgcluster, "_runner", lambda: ([], None, None))


def fake_bindir(tmp_path, **scripts: str):
    """A directory of shell scripts standing in for the PostgreSQL binaries."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name in ("initdb", "pg_ctl", "createdb"):
        path = bindir / name
        path.write_text("#!/bin/sh\n" + scripts.get(name, "exit 0\n"))
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return bindir


def test_missing_binaries_skip_the_pass_with_exit_0(plain_env, monkeypatch, capsys):
    monkeypatch.setattr(pgcluster, "find_bindir", lambda: None)

    assert pgcluster.main(["--", "true"]) == 0
    assert "PostgreSQL pass skipped: no PostgreSQL server binaries" in capsys.readouterr().err


def test_missing_binaries_fail_when_every_component_is_required(plain_env, monkeypatch):
    monkeypatch.setattr(pgcluster, "find_bindir", lambda: None)
    monkeypatch.setenv("COACHBOOK_REQUIRE_ALL", "1")

    assert pgcluster.main(["--", "true"]) == 1


def test_failing_initdb_fails_the_pass_with_its_error(plain_env, monkeypatch, tmp_path, capsys):
    bindir = fake_bindir(tmp_path, initdb="echo 'initdb: disk full' >&2\nexit 1\n")
    monkeypatch.setenv("PG_BINDIR", str(bindir))

    assert pgcluster.main(["--", "true"]) == 1
    err = capsys.readouterr().err
    assert "PostgreSQL pass FAILED" in err
    assert "initdb: disk full" in err
    assert "skipped" not in err


def test_failing_server_start_fails_the_pass_with_the_log_tail(
    plain_env, monkeypatch, tmp_path, capsys
):
    pg_ctl = (
        'while [ $# -gt 0 ]; do\n  if [ "$1" = "-l" ]; then shift; '
        'echo "FATAL:  could not create lock file" >> "$1"; fi\n  shift\ndone\nexit 1\n'
    )
    monkeypatch.setenv("PG_BINDIR", str(fake_bindir(tmp_path, pg_ctl=pg_ctl)))

    assert pgcluster.main(["--", "true"]) == 1
    err = capsys.readouterr().err
    assert "PostgreSQL pass FAILED" in err
    assert "--- last lines of server.log ---\nFATAL:  could not create lock file" in err
