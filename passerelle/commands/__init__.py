"""Sub-commands of the passerelle command."""
