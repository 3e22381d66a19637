"""The evaluation suites: model-level (qa, safety, crosslingual) and end to end (cds, injection)."""
