"""Settings built in-process from explicit values, never from the environment or a file."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from relay.settings import Settings, describe_errors
from tests.support.signing import SECRET

BASE = {"RELAY_REGISTER": "false", "RELAY_WEBHOOK_SECRET": SECRET}


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **{**BASE, **values})


def problems(**values: Any) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        settings(**values)
    return describe_errors(caught.value)
