"""Evaluation harness: model-level and end-to-end suites, run by `r1cds eval`."""
