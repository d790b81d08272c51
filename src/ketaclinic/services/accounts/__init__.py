"""Accounts: sign-in and sessions (argon2id, throttling, two-factor), the password policy,
recovery codes, the lock screen, roles and permissions, the account lifecycle, and the input
models of machine access and the users page's flags (``inputs``)."""
