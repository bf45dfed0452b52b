"""Settings: environment parsing, validation with named variables, masking, .env files."""

from __future__ import annotations

from pathlib import Path

import pytest

from trio_lingma.settings import ConfigError, Settings, load_dotenv


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No setting in the real environment, so the tests don't depend on the machine."""
    for field in Settings.__attrs_attrs__:
        monkeypatch.delenv(field.metadata["env"], raising=False)
    monkeypatch.delenv("URL", raising=False)
    monkeypatch.delenv("EMPTY", raising=False)
    return monkeypatch


def test_defaults_are_valid_and_use_the_simulator() -> None:
    settings = Settings.from_env({})
    assert settings == Settings()
    assert settings.uses_simulator


@pytest.mark.parametrize("word", ["1", "true", "TRUE", "yes", "On", " true "])
def test_bool_true_words(word: str) -> None:
    assert Settings.from_env({"ALLOW_OPEN": word}).allow_open is True


@pytest.mark.parametrize("word", ["0", "false", "No", "OFF"])
def test_bool_false_words(word: str) -> None:
    assert Settings.from_env({"ALLOW_OPEN": word}).allow_open is False


def test_bad_bool_names_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"ALLOW_OPEN: cannot read 'maybe' as true/false"):
        Settings.from_env({"ALLOW_OPEN": "maybe"})


def test_ints_floats_strings_and_lists() -> None:
    settings = Settings.from_env({
        "PORT": " 9000 ", "LINGMA_INSTANCES": "3", "IDLE_TIMEOUT": "2.5", "SSE_PING_INTERVAL": "1",
        "LINGMA_MODE": "agent", "API_KEYS": " k1 , ,k2,", "LINGMA_BINARY": "/opt/Lingma",
    })
    assert (settings.port, settings.lingma_instances) == (9000, 3)
    assert settings.idle_timeout == 2.5
    assert settings.sse_ping_interval == 1.0 and isinstance(settings.sse_ping_interval, float)
    assert settings.lingma_mode == "agent"
    assert settings.api_keys == ("k1", "k2")
    assert not settings.uses_simulator


@pytest.mark.parametrize(
    ("env", "match"),
    [
        ({"PORT": "http"}, r"PORT: cannot read 'http' as int"),
        ({"PORT": "1.5"}, r"PORT: cannot read '1.5' as int"),
        ({"IDLE_TIMEOUT": "soon"}, r"IDLE_TIMEOUT: cannot read 'soon' as float"),
        ({"PORT": "70000"}, r"PORT: must be 0\.\.65535"),
        ({"LINGMA_INSTANCES": "0"}, r"LINGMA_INSTANCES: must be an integer >= 1"),
        ({"LINGMA_CONCURRENCY": "-1"}, r"LINGMA_CONCURRENCY"),
        ({"LINGMA_MODE": "turbo"}, r"LINGMA_MODE: must be chat or agent"),
        ({"MAX_BODY_BYTES": "10"}, r"MAX_BODY_BYTES"),
        ({"LINGMA_ARGV": "{binary} start"}, r"LINGMA_ARGV: must be a template containing \{workdir\}"),
        ({"LOG_LEVEL": "LOUD"}, r"LOG_LEVEL"),
        ({"FIRST_TOKEN_TIMEOUT": "0"}, r"FIRST_TOKEN_TIMEOUT: must be a number of seconds > 0"),
        ({"LINGMA_PING_TIMEOUT": "nan"}, r"LINGMA_PING_TIMEOUT"),
        ({"LINGMA_STOP_GRACE": "-1"}, r"LINGMA_STOP_GRACE: must be a number of seconds >= 0"),
        ({"LINGMA_RESTART_INITIAL": "5", "LINGMA_RESTART_MAX": "1"}, r"LINGMA_RESTART_MAX"),
    ],
)
def test_errors_name_the_variable(env: dict[str, str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        Settings.from_env(env)


def test_empty_values_mean_the_default() -> None:
    assert Settings.from_env({"PORT": "", "API_KEYS": ""}) == Settings()


def test_overrides_win_over_the_environment() -> None:
    assert Settings.from_env({"PORT": "9000"}, port=9001).port == 9001


def test_from_env_reads_os_environ_by_default(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("PORT", "8400")
    assert Settings.from_env().port == 8400


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost", "LocalHost"])
def test_loopback_hosts_need_no_keys(host: str) -> None:
    assert Settings.from_env({"HOST": host}).host == host


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.5", "example.com"])
def test_open_host_without_keys_is_refused(host: str) -> None:
    with pytest.raises(ConfigError, match=r"HOST=.*API_KEYS.*ALLOW_OPEN"):
        Settings.from_env({"HOST": host})


def test_open_host_with_keys_or_allow_open_is_accepted() -> None:
    assert Settings.from_env({"HOST": "0.0.0.0", "API_KEYS": "k" * 20}).api_keys == ("k" * 20,)
    assert Settings.from_env({"HOST": "0.0.0.0", "ALLOW_OPEN": "true"}).allow_open


def test_masked_hides_keys_and_names_every_variable() -> None:
    settings = Settings(api_keys=("sk-abcdefghijklmnop", "short"))
    masked = settings.masked()
    assert masked["API_KEYS"] == "sk-…,…"
    assert "abcdefghijklmnop" not in str(masked) and "short" not in str(masked)
    assert masked["PORT"] == 8317
    assert len(masked) == len(Settings.__attrs_attrs__)


def test_load_dotenv(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    env = tmp_path / ".env"
    env.write_text(
        "# a comment\n"
        "\n"
        "PORT=9000\n"
        "export LOG_LEVEL=DEBUG\n"
        "API_KEYS=\"k1,k2\"\n"
        "LINGMA_BINARY='/opt/my Lingma'\n"
        "LINGMA_MODE=agent  # inline comment\n"
        "HOST=\"0.0.0.0\" # quoted, then a comment\n"
        "LINGMA_ARGV=\"it's {workdir}\"\n"
        "URL=http://h/#frag\n"
        "EMPTY=\n"
        "not a setting line\n"
        "ALLOW_OPEN=true\n",
        encoding="utf-8",
    )
    clean_env.setenv("ALLOW_OPEN", "false")  # the real environment wins
    values = load_dotenv(env)
    assert values == {
        "PORT": "9000",
        "LOG_LEVEL": "DEBUG",
        "API_KEYS": "k1,k2",
        "LINGMA_BINARY": "/opt/my Lingma",
        "LINGMA_MODE": "agent",
        "HOST": "0.0.0.0",
        "LINGMA_ARGV": "it's {workdir}",
        "URL": "http://h/#frag",
        "EMPTY": "",
    }


def test_load_dotenv_missing_file_is_empty(tmp_path: Path) -> None:
    assert load_dotenv(tmp_path / "nope.env") == {}


def test_dotenv_values_feed_from_env(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    env = tmp_path / ".env"
    env.write_text("\ufeffPORT=9100\nLINGMA_INSTANCES=2\n", encoding="utf-8")
    settings = Settings.from_env(load_dotenv(env))
    assert (settings.port, settings.lingma_instances) == (9100, 2)
