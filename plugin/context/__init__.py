"""Clinical context: FHIR R4 prefetch to a de-identified, citable, compact summary with a stable fingerprint."""
