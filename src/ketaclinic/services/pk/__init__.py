"""Predicted exposure (pharmacokinetics) for a registered patient, and its chart."""
