"""pytest plugin, loaded with ``-p`` before any other plugin: patches the test process for
gevent before plugins import ssl or socket (requests, urllib3, anyio), so that sample servers
and clients in one test cooperate and no module keeps an unpatched ssl."""

from gevent import monkey

monkey.patch_all()
