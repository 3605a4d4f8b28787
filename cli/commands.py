"""Imports every command module so their commands register on the root app."""

from . import admin, branches, dataset_cmd, history, inspect_cmd, remotes, ui_cmd, workflow  # noqa: F401
