"""Start-up refuses bad configuration with a message naming the variable."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_settings(**env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "SECRET_KEY", "DEBUG", "ALLOWED_HOSTS"}}
    script = "import policycoder.settings as s; print(s.DATABASES['default']['ENGINE'], s.DATABASES['default']['NAME'])"
    return subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=base | env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"DEBUG": "0"}, "SECRET_KEY"),
        ({"DEBUG": "maybe", "SECRET_KEY": "k"}, "DEBUG='maybe'"),
        ({"SECRET_KEY": "k", "DATABASE_URL": "mysql://x/y"}, "DATABASE_URL='mysql://x/y'"),
        ({"SECRET_KEY": "k", "DATABASE_URL": "postgres://u@h:port/db"}, "DATABASE_URL"),
        ({"SECRET_KEY": "k", "DATABASE_URL": "postgres://u@h:5432/"}, "names no database"),
        ({"SECRET_KEY": "k", "MAX_UPLOAD_MB": "lots"}, "MAX_UPLOAD_MB='lots'"),
        ({"SECRET_KEY": "k", "CSRF_TRUSTED_ORIGINS": "example.org"}, "CSRF_TRUSTED_ORIGINS"),
    ],
)
def test_bad_values_stop_start_up_naming_the_variable(env, names):
    result = load_settings(**env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and names in result.stderr


def test_defaults_to_sqlite_in_the_project_folder():
    result = load_settings(SECRET_KEY="k")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["django.db.backends.sqlite3", str(ROOT / "db.sqlite3")]


def test_debug_runs_without_a_secret_key_and_reads_postgres_urls():
    result = load_settings(DEBUG="1", DATABASE_URL="postgres://postgres@127.0.0.1:5432/test")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["django.db.backends.postgresql", "test"]


def test_postgres_connections_turn_jit_off_unless_the_url_says_otherwise():
    script = "import policycoder.settings as s; print(s.DATABASES['default']['OPTIONS'])"
    base = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "SECRET_KEY", "DEBUG"}}

    def options(url: str) -> str:
        env = base | {"SECRET_KEY": "k", "DATABASE_URL": url}
        done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert options("postgres://u@h:5432/db") == "{'options': '-c jit=off'}"
    assert options("postgres://u@h:5432/db?options=-c%20jit%3Don&sslmode=require") == (
        "{'options': '-c jit=on', 'sslmode': 'require'}"
    )


@pytest.mark.django_db
def test_the_test_database_connection_has_jit_off():
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only: SQLite has no JIT")
    with connection.cursor() as cursor:
        cursor.execute("SHOW jit")
        assert cursor.fetchone()[0] == "off"
