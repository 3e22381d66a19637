"""The CDS Hooks 2.0 HTTP edge of R1 CDS: wire models, routes, prefetch, EHR authentication."""
