"""Synthetic demo clinic seeding. Sits above bootstrap: it uses the services, and no service
imports it."""
