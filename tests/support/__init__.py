"""Helpers shared by the test modules: harnesses, waits and rigs (no tests here)."""
