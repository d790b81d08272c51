"""Data in and out: FHIR Bundle and CSV roster imports, FHIR bundles/NDJSON and Bulk Data
jobs, and the audited research and interoperability exports."""
