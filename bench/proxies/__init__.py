"""The three products under test, each configured from the same ``Service`` descriptions."""

from bench.proxies.base import Proxy
from bench.proxies.haproxy import HAProxy
from bench.proxies.nginx import Nginx
from bench.proxies.passerelle import Passerelle

PRODUCTS: tuple[type[Proxy], ...] = (Passerelle, HAProxy, Nginx)

__all__ = ["PRODUCTS", "HAProxy", "Nginx", "Passerelle", "Proxy"]
