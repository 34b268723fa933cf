"""Session ticket keys shared by every worker of the engine.

OpenSSL gives each context random ticket keys of its own, so a client resuming its TLS session
(TLS 1.3 tickets, TLS 1.2 tickets) succeeds only when its new connection reaches the worker that
issued the ticket: with two workers, every other reconnect of a Skype for Business or Exchange
client paid a full handshake. The supervisor makes one set of keys and hands it to every worker
with the configuration; each offload context is given it.

The ``ssl`` module offers no way to set ticket keys, so OpenSSL is called through ctypes, in
the very library ``_ssl`` is linked with, on the ``SSL_CTX`` that CPython's context object
holds right after its object header. That pointer is checked first (OpenSSL must report the
options the context reports); a context that fails the check keeps its own keys.
"""

from __future__ import annotations

import logging
import os
import ssl
from functools import cache
from typing import Any

log = logging.getLogger(__name__)

# SSL_CTX_set_tlsext_ticket_keys(ctx, keys, 80): 16 bytes of key name, 32 of HMAC key and 32
# of AES key (OpenSSL 1.1 and 3).
KEYS_LENGTH = 80
_SET_TICKET_KEYS = 59  # SSL_CTRL_SET_TLSEXT_TICKET_KEYS

_keys: bytes | None = None


def new_keys() -> bytes:
    return os.urandom(KEYS_LENGTH)


def use_keys(keys: bytes | None) -> None:
    """The keys every offload context of this process gets from now on (None: OpenSSL's own)."""
    global _keys
    if keys is not None and len(keys) != KEYS_LENGTH:
        raise ValueError(f"session ticket keys are {KEYS_LENGTH} bytes, not {len(keys)}")
    _keys = keys


def share_keys(ctx: ssl.SSLContext) -> bool:
    """Give ``ctx`` the shared keys; False when there are none or OpenSSL cannot be reached."""
    if _keys is None:
        return False
    openssl = _openssl()
    if openssl is None:
        return False
    ctrl, get_options = openssl
    import ctypes

    pointer = ctypes.c_void_p.from_address(id(ctx) + object.__basicsize__).value
    if not pointer or get_options(pointer) != ctx.options:
        log.warning("session tickets stay per worker: this Python's SSL context is not as expected")
        return False
    return bool(ctrl(pointer, _SET_TICKET_KEYS, KEYS_LENGTH, _keys))


@cache
def _openssl() -> tuple[Any, Any] | None:
    """``SSL_CTX_ctrl`` and ``SSL_CTX_get_options`` from the OpenSSL ``_ssl`` is linked with.

    Loaded at the first TLS context: a worker whose configuration has no TLS never loads ctypes.
    """
    import _ssl
    import ctypes

    try:
        library = ctypes.CDLL(_ssl.__file__)
        ctrl, get_options = library.SSL_CTX_ctrl, library.SSL_CTX_get_options
    except (OSError, AttributeError) as exc:
        log.warning("session tickets stay per worker: %s", exc)
        return None
    ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_char_p]
    ctrl.restype = ctypes.c_long
    get_options.argtypes = [ctypes.c_void_p]
    get_options.restype = ctypes.c_uint64
    return ctrl, get_options
