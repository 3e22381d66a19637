"""Deterministic safety rules over a clinical context, and the cards they become."""
