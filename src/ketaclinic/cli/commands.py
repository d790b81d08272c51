"""Imports every command module so that each registers its commands on the app."""
from ketaclinic.cli import outcomes  # noqa: F401
