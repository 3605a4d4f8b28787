"""Imports every command module so their commands register on the root app."""

from . import admin, history, workflow  # noqa: F401
