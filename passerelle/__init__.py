"""Passerelle: a virtual load balancer and reverse proxy appliance."""

__version__ = "0.1.0"
