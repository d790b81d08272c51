"""Imports every command module so that each registers its commands on the app."""

from ketaclinic.cli import core  # noqa: F401
from ketaclinic.cli import scoring  # noqa: F401
from ketaclinic.cli import dosing  # noqa: F401
from ketaclinic.cli import chair  # noqa: F401
from ketaclinic.cli import outcomes  # noqa: F401
from ketaclinic.cli import pk  # noqa: F401
from ketaclinic.cli import mbc  # noqa: F401
from ketaclinic.cli import ops  # noqa: F401
from ketaclinic.cli import imports  # noqa: F401
from ketaclinic.cli import tokens  # noqa: F401
from ketaclinic.cli import webhooks  # noqa: F401
