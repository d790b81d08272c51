"""Renderers: plain data in, documents out, no database. SVG charts, PDFs (progress report,
REMS worksheet, fonts), the FHIR R4 mapper and codes, de-identification and safe CSV."""
