"""Imports every command module so that each registers its commands on the app."""
from ketaclinic.cli import pk  # noqa: F401
