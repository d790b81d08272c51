"""The bundled outcome configuration (timepoints, screening triggers) as plain JSON.

Its own module because both the cohort statistics and the exposure screening read it, and
cohort re-exports exposure: neither has to import the other to load it.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any


def load_outcome_config() -> dict[str, Any]:
    """Load the bundled outcome configuration (timepoints, screening triggers) as plain JSON."""
    path = resources.files("ketaclinic.clinical.data.outcomes").joinpath("outcome_config.json")
    return json.loads(path.read_text(encoding="utf-8"))
