"""Deployment on VMware vSphere through the vSphere API (pyvmomi)."""
