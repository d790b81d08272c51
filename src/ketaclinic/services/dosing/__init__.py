"""Eligibility screening and dose safety: clinical facts, screenings, dose orders and plans,
rule sets in the database, verbal orders, and loading the closed loop's facts for the core's
gates."""
