"""Outcomes: per-course outcomes, the summary tables kept in step on write, the clinic
dashboard (and its SQL), time to relapse, and the progress report."""
