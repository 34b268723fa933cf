"""Helpers shared by the tests: an engine in real processes, sample servers, HTTP clients."""
