"""Listening sockets of the virtual services."""
