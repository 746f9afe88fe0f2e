"""Findings: failure patterns that waste money, with evidence and priced fixes."""
