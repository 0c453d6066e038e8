"""A misspelt RELAY_* variable is reported at start-up with the closest setting."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import relay
from relay.settings_typos import misspelt, setting_names

ROOT = Path(relay.__file__).resolve().parents[1]


def run_config(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    return subprocess.run(
        [sys.executable, "-m", "relay", "config"],
        capture_output=True, text=True, timeout=60, cwd=cwd,
        env={**base, "PYTHONPATH": str(ROOT), **env},
    )  # fmt: skip


def test_a_typo_names_the_closest_setting() -> None:
    assert misspelt(["RELAY_PORTT", "RELAY_PORT", "HOME"], setting_names()) == [
        ("RELAY_PORTT", "RELAY_PORT")
    ]
    assert misspelt(["RELAY_REDIS_ULR"], setting_names()) == [
        ("RELAY_REDIS_ULR", "RELAY_REDIS_URL")
    ]
    assert misspelt(["RELAY_ZZZZZZZZZZZZZZZZZZZZ"], setting_names()) == [
        ("RELAY_ZZZZZZZZZZZZZZZZZZZZ", None)
    ]


def test_every_real_setting_is_silent() -> None:
    assert misspelt(setting_names(), setting_names()) == []
    assert misspelt(["RELAY_IMAGE", "ANYFORMAT_API_KEY", "PATH"], setting_names()) == []


def test_the_cli_warns_on_stderr_without_the_value(tmp_path: Path) -> None:
    done = run_config({"RELAY_PORTT": "s3cr3t-value", "RELAY_PORT": "8081"}, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "RELAY_PORTT names no setting" in done.stderr
    assert "did you mean RELAY_PORT?" in done.stderr
    assert "s3cr3t-value" not in done.stderr + done.stdout
    assert "RELAY_PORT=8081" in done.stdout


def test_a_typo_in_dotenv_is_warned_too_and_a_clean_env_is_silent(tmp_path: Path) -> None:
    assert "warning" not in run_config({"RELAY_PORT": "8081"}, tmp_path).stderr
    (tmp_path / ".env").write_text("RELAY_DEDUPE_TTLL=5\n")
    assert "did you mean RELAY_DEDUPE_TTL?" in run_config({}, tmp_path).stderr
