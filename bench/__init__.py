"""Benchmarks of R1 CDS against floors measured in the same run on the same machine."""
