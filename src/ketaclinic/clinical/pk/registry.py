"""The catalogue of PK models by id."""

from __future__ import annotations

from ketaclinic.clinical.pk.esketamine import S_MODELS
from ketaclinic.clinical.pk.model import PkModel
from ketaclinic.clinical.pk.racemic import RACEMIC_MODELS
from ketaclinic.clinical.rules import ClinicalInputError

MODELS: dict[str, PkModel] = {m.model_id: m for m in RACEMIC_MODELS + S_MODELS}


def get_model(model_id: str) -> PkModel:
    """The model with this id; ClinicalInputError naming the known ids otherwise."""
    try:
        return MODELS[model_id]
    except (KeyError, TypeError):
        raise ClinicalInputError(
            f"unknown PK model {model_id!r}; known: {', '.join(sorted(MODELS))}"
        ) from None


def list_models() -> list[PkModel]:
    """All models, in catalogue order."""
    return list(MODELS.values())
