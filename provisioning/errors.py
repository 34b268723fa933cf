"""The one failure type of a deployment: a message that tells the user what to fix."""

from __future__ import annotations


class DeployError(Exception):
    """A deployment cannot go on; the message names the cause and the fix."""
