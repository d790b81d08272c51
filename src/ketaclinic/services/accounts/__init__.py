"""Accounts: sign-in and sessions (argon2id, throttling, two-factor), the password policy,
recovery codes, the lock screen, roles and permissions, and the account lifecycle."""
