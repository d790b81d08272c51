"""Medication entry against the bundled vocabulary (clinical/medications.py).

A recognised name (generic or brand, any case or plural) is stored as its normalised ingredient
with the vocabulary's classes; an unrecognised one is stored as typed and marked, and screening
then sends the patient to review (unknown is not negative).
"""

from __future__ import annotations

from dataclasses import dataclass

from ketaclinic.clinical.medications import load_bundled_vocabulary
from ketaclinic.schemas import MedicationCreate

_MAX_CLASS = 60  # PatientMedication.drug_class length


@dataclass(frozen=True)
class MedicationLookup:
    entered: str
    ingredient: str | None
    classes: tuple[str, ...]
    rxnorm: str | None

    @property
    def recognised(self) -> bool:
        return self.ingredient is not None

    def as_dict(self) -> dict:
        return {"entered": self.entered, "ingredient": self.ingredient,
                "classes": list(self.classes), "rxnorm": self.rxnorm,
                "recognised": self.recognised}


def lookup(name: str, drug_class: str = "") -> MedicationLookup:
    vocab = load_bundled_vocabulary()
    med = vocab.resolve(name, drug_class)
    return MedicationLookup(name, med.ingredient, tuple(sorted(med.classes)), med.rxnorm)


def normalised(data: MedicationCreate) -> tuple[MedicationCreate, MedicationLookup]:
    """The record to store: ingredient and vocabulary classes for a recognised medicine."""
    found = lookup(data.name, data.drug_class)
    if not found.recognised:
        return data, found
    classes = ", ".join(c for c in found.classes if c != "no-listed-interaction")
    return data.model_copy(update={"name": found.ingredient,
                                   "drug_class": classes[:_MAX_CLASS]}), found


def is_recognised(name: str) -> bool:
    return load_bundled_vocabulary().lookup(name) is not None


def name_choices() -> tuple[str, ...]:
    """Every generic and brand name the vocabulary knows (for the entry form's suggestions)."""
    vocab = load_bundled_vocabulary()
    return tuple(sorted({n for e in vocab.entries for n in (e.ingredient, *e.names)},
                        key=str.lower))
