"""Measurement-based care: instruments in use, assessments and their alerts, item-by-item
forms and the assessment input model (inputs.py), between-visit self-report links and the outbox
that delivers them."""
