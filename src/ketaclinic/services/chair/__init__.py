"""The chair area: treatment courses, the schedule, the session at the chair (check-in to
discharge) and its read side, the nurse's board, REMS forms, the controlled-substance ledger and
the links between session and clinic alerts, and the inputs of its forms without a JSON twin
(``inputs``); ``facade`` bundles them for the Services container."""
