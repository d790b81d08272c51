"""Services: load data, call the clinical core's gates, write and audit. One package per feature
(accounts, audit, registry, dosing, chair, mbc, outcomes, pk, interop); the small shared kernel
sits here at the top: errors, clock, clinic_time, context, numbers, idempotency, paging, secretbox,
and doctor (the operator's checks)."""
