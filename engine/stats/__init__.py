"""Counters shared by the workers, and their rendering for Prometheus and the UI."""
