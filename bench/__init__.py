"""Passerelle's benchmark suite: Passerelle, HAProxy and nginx side by side in one run.

Run from the repository root as ``python -m bench``; see bench/README.md.
"""
