"""Test-wide set-up: the test process is cooperative (gevent), so sample servers and the
clients of one test can run side by side in it while the engine runs as real processes."""

from gevent import monkey

monkey.patch_all()

pytest_plugins = ["support.fixtures"]
