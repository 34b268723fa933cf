"""Support for the test suite that must live in an importable package."""
