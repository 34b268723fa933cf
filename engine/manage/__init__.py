"""Managing the configuration: the versioned store and reading/writing config files."""
