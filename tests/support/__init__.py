"""Helpers shared by the test suites: fixture locations and loopback servers."""
