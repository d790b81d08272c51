"""The audit trail: the hash-chained rows of every access to patient data (``trail``) and the
signed checkpoints of the chains' tips kept outside the database (``checkpoint``)."""
