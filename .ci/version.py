"""Print the package version from pyproject.toml: the one source, for image tags and labels."""

import sys
import tomllib
from pathlib import Path

with (Path(__file__).resolve().parents[1] / "pyproject.toml").open("rb") as f:
    sys.stdout.write(tomllib.load(f)["project"]["version"] + "\n")
