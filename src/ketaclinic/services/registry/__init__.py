"""The patient registry: patients and their history, the patient banner, and the ICD-10 and
medication vocabularies the forms offer."""
