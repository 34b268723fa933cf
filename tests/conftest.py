"""Test-wide set-up. The process is patched for gevent by the plugin passerelle.testing.
gevent_first (see pyproject.toml), so sample servers and the clients of one test run side by side
while the engine runs as real processes."""

pytest_plugins = ["support.fixtures"]
