"""The test suite's settings (pytest-django names this module in pyproject.toml): the project's
settings in their "test" mode, the one place a constant SECRET_KEY is allowed."""

import os

os.environ["DJANGO_ENV"] = "test"

from .settings import *  # noqa: F403
