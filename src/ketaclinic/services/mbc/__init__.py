"""Measurement-based care: instruments in use, assessments and their alerts, item-by-item
forms, between-visit self-report links and the outbox that delivers them."""
