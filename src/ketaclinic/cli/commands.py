"""Imports every command module so that each registers its commands on the app."""

from ketaclinic.cli import core
from ketaclinic.cli import scoring
from ketaclinic.cli import dosing
from ketaclinic.cli import chair
from ketaclinic.cli import outcomes
from ketaclinic.cli import pk
from ketaclinic.cli import mbc
from ketaclinic.cli import ops
from ketaclinic.cli import imports
from ketaclinic.cli import tokens
from ketaclinic.cli import webhooks

#: The command modules in the order their commands and groups appear in ``ketaclinic --help``.
MODULES = (core, scoring, dosing, chair, outcomes, pk, mbc, ops, imports, tokens, webhooks)
