"""Standard-library ``ssl`` contexts: TLS offload on virtual services, re-encryption to servers.

Contexts are built once per configuration; nothing here runs per request except the SNI
callback (two dict look-ups) and ``sni_for``.

Legacy protocol versions on this OpenSSL (3.0): TLS 1.0 and 1.1 sign the handshake with
MD5+SHA-1, which OpenSSL 3 refuses at security level 1 and above ("no suitable signature
algorithm"). Only ``@SECLEVEL=0`` lets them through, so "backward-compatible" with a
``min_version`` below TLS 1.2 appends it. That level also accepts short keys, which is why no
other cipher set ever uses it. The other cipher sets contain only TLS 1.2 AEAD suites, so they
cannot negotiate TLS 1.0/1.1 whatever ``min_version`` says.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import ssl
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from passerelle.engine.tls.sni import SNITable, normalise
from passerelle.engine.tls.tickets import share_keys

if TYPE_CHECKING:
    from passerelle.engine.model import Certificate, TLSOffload, TLSReencrypt

_ECDHE_AEAD = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
)
# Mozilla server-side TLS guidelines 5.7, "intermediate" and "old" minus 3DES.
_MOZILLA_INTERMEDIATE = (
    f"{_ECDHE_AEAD}:DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"
)
_LEGACY_CBC_AND_RSA = (
    "ECDHE-ECDSA-AES128-SHA256:ECDHE-RSA-AES128-SHA256:ECDHE-ECDSA-AES128-SHA:"
    "ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384:ECDHE-RSA-AES256-SHA384:"
    "ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES256-SHA:DHE-RSA-AES128-SHA256:DHE-RSA-AES256-SHA256:"
    "AES128-GCM-SHA256:AES256-GCM-SHA384:AES128-SHA256:AES256-SHA256:AES128-SHA:AES256-SHA"
)
_NEVER = "!aNULL:!eNULL:!EXPORT:!RC4:!3DES:!DES:!MD5:!PSK:!SRP"

CIPHER_SETS: dict[str, str] = {
    "best-practices": f"{_ECDHE_AEAD}:{_NEVER}",
    "intermediate": f"{_MOZILLA_INTERMEDIATE}:{_NEVER}",
    "backward-compatible": f"{_MOZILLA_INTERMEDIATE}:{_LEGACY_CBC_AND_RSA}:{_NEVER}",
    # TLS 1.3 only: this list never applies, its suites are OpenSSL's TLS 1.3 defaults
    "modern": f"{_ECDHE_AEAD}:{_NEVER}",
}

TLS_VERSIONS: dict[str, ssl.TLSVersion] = {
    "TLS1.0": ssl.TLSVersion.TLSv1,
    "TLS1.1": ssl.TLSVersion.TLSv1_1,
    "TLS1.2": ssl.TLSVersion.TLSv1_2,
    "TLS1.3": ssl.TLSVersion.TLSv1_3,
}

# RFC 7919 ffdhe2048, the group Mozilla recommends for DHE suites; without it OpenSSL skips them.
FFDHE2048_PEM = """-----BEGIN DH PARAMETERS-----
MIIBCAKCAQEA//////////+t+FRYortKmq/cViAnPTzx2LnFg84tNpWp4TZBFGQz
+8yTnc4kmz75fS/jY2MMddj2gbICrsRhetPfHtXV/WVhJDP1H18GbtCFY2VVPe0a
87VXE15/V8k1mE8McODmi3fipona8+/och3xWKE2rec1MKzKT0g6eXq8CrGCsyT7
YdEIqUuyyOP7uWrat2DX9GgdT0Kj3jlN9K5W7edjcrsZCwenyO4KbXCeAvzhzffi
7MA0BM0oNC9hkXL+nOmFg/+OTxIy7vKBg8P+OxtMb61zO7X8vC7CIAXFjvGDfRaD
ssbzSibBsu/6iGtCOGEoXJf//////////wIBAg==
-----END DH PARAMETERS-----
"""

ALPN_PROTOCOLS = ["http/1.1"]  # the engine does not speak h2; never advertise it
_CERT_ATTR = "passerelle_certificate"
_SNI_ATTR = "passerelle_server_name"
_HOSTNAME = re.compile(r"[a-z0-9_](?:[a-z0-9_\-.]*[a-z0-9_])?")


def server_context(
    offload: TLSOffload,
    certificates: Mapping[str, Certificate],
    *,
    context_class: type[ssl.SSLContext] | None = None,
    record_server_name: bool = True,
) -> ssl.SSLContext:
    """The context a virtual service terminates TLS with; its first certificate is the default.

    Handshakes pass through an SNI callback that records the client's server name and the
    chosen certificate on the connection (see ``server_name``/``chosen_certificate``) and,
    with several certificates, switches the connection to that certificate's context. With
    one certificate and ``record_server_name`` off there is nothing to choose or record, and
    no callback: ``server_name`` is then None. ``context_class`` defaults to
    ``ssl.SSLContext`` as it is at call time (gevent's once monkey-patched); pass
    ``gevent.ssl.SSLContext`` to use gevent without patching.
    """
    cls = context_class or ssl.SSLContext
    contexts: dict[str, ssl.SSLContext] = {}
    entries: list[tuple[str, tuple[str, ...]]] = []
    for name in offload.certificates:
        if name in contexts:
            continue
        cert = _lookup(certificates, name)
        # Certificates were checked whole when the configuration was validated; OpenSSL
        # checks the pair again on loading. Only the names are needed here.
        entries.append((name, sni_names(cert.cert_pem)))
        contexts[name] = _offload_context(cls, offload, cert)
    default = contexts[offload.certificates[0]]
    if len(contexts) > 1 or record_server_name:
        # A Python call in every handshake (~0.5% of an ECDSA one): only where it is of use.
        default.sni_callback = _sni_callback(SNITable(entries), contexts)
    return default


class RecordedNames:
    """What the SNI callback records on a server-side connection, defaulted on the class.

    Without the defaults, reading them on a connection whose handshake ran no callback (one
    certificate, no rule reading the server name) fails twice before ``getattr`` gives its
    default: once on the socket, once more on the raw socket gevent's falls back to.
    """

    passerelle_server_name: str | None = None
    passerelle_certificate: str | None = None


def chosen_certificate(ssl_sock: Any) -> str | None:
    """Name of the certificate presented on a server-side connection (after the handshake)."""
    name = getattr(ssl_sock, _CERT_ATTR, None)
    if name is None:
        name = getattr(getattr(ssl_sock, "context", None), _CERT_ATTR, None)
    return name


def server_name(ssl_sock: Any) -> str | None:
    """The server name the client sent (SNI), normalised; None when it sent none."""
    return getattr(ssl_sock, _SNI_ATTR, None)


def client_context(
    reencrypt: TLSReencrypt,
    certificates: Mapping[str, Certificate],
    *,
    context_class: type[ssl.SSLContext] | None = None,
) -> ssl.SSLContext:
    """The context for TLS to real servers.

    Without ``verify`` anything is accepted (real servers commonly carry internal or
    self-signed certificates). With it, the chain must lead to ``ca_certificate`` (or the
    system store) and the certificate must name the host passed as ``server_hostname``: use
    ``server_hostname_for``, which falls back to the server's IP address when no SNI is sent.
    """
    ctx = (context_class or ssl.SSLContext)(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_COMPRESSION
    ctx.set_alpn_protocols(ALPN_PROTOCOLS)
    if not reencrypt.verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.check_hostname = True
    if reencrypt.ca_certificate:
        from passerelle.engine.tls.certificates import inspect

        ca = _lookup(certificates, reencrypt.ca_certificate)
        inspect(ca, require_key=False)
        # an intermediate CA (or a pinned server certificate) is a trust anchor of its own
        ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        ctx.load_verify_locations(cadata=_join_pem(ca.cert_pem, ca.chain_pem))
    else:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    return ctx


def sni_for(reencrypt: TLSReencrypt, host: str | None) -> str | None:
    """The server name to send to a real server, from the pool's setting and the request Host."""
    if reencrypt.sni == "none":
        return None
    if reencrypt.sni != "host":
        return reencrypt.sni
    if not host or host[0] == "[" or host.count(":") > 1:
        return None  # nothing, or an IPv6 literal: SNI carries host names only
    name = host.partition(":")[0].strip().rstrip(".").lower()
    if not name or not name.isascii() or not _HOSTNAME.fullmatch(name) or _is_ip(name):
        return None
    return name


def server_hostname_for(
    reencrypt: TLSReencrypt, host: str | None, server_address: str
) -> str | None:
    """What to pass as ``server_hostname`` when wrapping the connection to a real server.

    ``sni_for``'s name; failing that, with ``verify`` on, the server's IP address: Python then
    sends no SNI and checks the address against the certificate's IP SANs.
    """
    name = sni_for(reencrypt, host)
    if name is None and reencrypt.verify:
        return server_address
    return name


def sni_names(cert_pem: str) -> tuple[str, ...]:
    """The names a certificate answers SNI for: ``certificates.leaf_dns_names``, read by OpenSSL.

    Workers build contexts on every snapshot: calling cryptography's X.509 code there would
    fault in megabytes of its library in each worker only to read a few names. CPython's own
    certificate decoder is private, so without it, or when it refuses the PEM, cryptography
    reads the names (and reports what is wrong).
    """
    decode = getattr(ssl._ssl, "_test_decode_cert", None)  # type: ignore[attr-defined]
    if decode is not None:
        try:
            with _memory_file(cert_pem) as path:
                return _decoded_names(decode(path))
        except (ssl.SSLError, OSError, ValueError, TypeError):
            pass
    # Here, not at the top: cryptography's X.509 code loads only where TLS is configured.
    from passerelle.engine.tls.certificates import leaf_dns_names

    return leaf_dns_names(cert_pem)


def _decoded_names(decoded: dict[str, Any]) -> tuple[str, ...]:
    """SAN dNSNames lowercased; the subject CN only for a certificate without a SAN at all."""
    san = decoded.get("subjectAltName")
    if san is None:
        for rdn in decoded.get("subject", ()):
            for key, value in rdn:
                if key == "commonName":
                    return (value.lower(),) if value else ()
        return ()
    return tuple(value.lower() for kind, value in san if kind == "DNS")


def _lookup(certificates: Mapping[str, Certificate], name: str) -> Certificate:
    from passerelle.engine.tls.certificates import CertificateError

    try:
        return certificates[name]
    except KeyError:
        raise CertificateError("name", f"no certificate named {name!r}") from None


def _offload_context(
    cls: type[ssl.SSLContext], offload: TLSOffload, cert: Certificate
) -> ssl.SSLContext:
    ctx = cls(ssl.PROTOCOL_TLS_SERVER)
    minimum = TLS_VERSIONS[offload.min_version]
    if offload.cipher_set == "modern":
        minimum = ssl.TLSVersion.TLSv1_3
    with warnings.catch_warnings():
        # Python deprecates TLS 1.0/1.1; offering them is the configuration's explicit choice
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = minimum
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.options |= (
        ssl.OP_NO_COMPRESSION
        | ssl.OP_CIPHER_SERVER_PREFERENCE
        | ssl.OP_SINGLE_ECDH_USE
        | ssl.OP_SINGLE_DH_USE
        | ssl.OP_NO_RENEGOTIATION  # client-initiated renegotiation is a CPU exhaustion vector
        # A client that hangs up without close_notify (most do, s_time and browsers alike):
        # the engine already reads that as the end of input, as HTTP's framing detects a cut
        # message. Without this OpenSSL first builds an error and writes a fatal alert into
        # the closed connection, ~1% of a full handshake's instructions.
        | ssl.OP_IGNORE_UNEXPECTED_EOF
    )
    share_keys(ctx)  # a session resumes on whichever worker the client reaches next
    ciphers = CIPHER_SETS[offload.cipher_set]
    if offload.cipher_set == "backward-compatible" and minimum < ssl.TLSVersion.TLSv1_2:
        ciphers += ":@SECLEVEL=0"
    ctx.set_ciphers(ciphers)
    ctx.set_alpn_protocols(ALPN_PROTOCOLS)
    if "DHE-RSA" in ciphers:
        with _memory_file(FFDHE2048_PEM) as path:
            ctx.load_dh_params(path)
    with (
        _memory_file(_join_pem(cert.cert_pem, cert.chain_pem)) as cert_path,
        _memory_file(cert.key_pem) as key_path,
    ):
        try:
            ctx.load_cert_chain(cert_path, key_path)
        except ssl.SSLError as exc:
            from passerelle.engine.tls.certificates import CertificateError

            raise CertificateError("cert_pem", f"{cert.name}: OpenSSL refused it: {exc}") from None
    setattr(ctx, _CERT_ATTR, cert.name)
    return ctx


def _sni_callback(
    table: SNITable, contexts: Mapping[str, ssl.SSLContext]
) -> Callable[[Any, str | None, ssl.SSLContext], None]:
    def on_client_hello(conn: Any, name: str | None, initial: ssl.SSLContext) -> None:
        # gevent's SSLSocket hands a slotted wrapper of its raw socket, holding a weakref to it
        if hasattr(type(conn), "_sslsock"):
            conn = conn._sslsock()
        chosen = table.choose(name)
        setattr(conn, _SNI_ATTR, normalise(name) or None)
        setattr(conn, _CERT_ATTR, chosen)
        ctx = contexts[chosen]
        if ctx is not initial:
            conn.context = ctx

    return on_client_hello


def _join_pem(*parts: str) -> str:
    return "".join(part.strip() + "\n" for part in parts if part.strip())


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


@contextlib.contextmanager
def _memory_file(text: str) -> Iterator[str]:
    """A path to ``text`` for OpenSSL's file-only loaders; on Linux keys never touch a disk."""
    if hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd"):
        fd = os.memfd_create("passerelle-pem", os.MFD_CLOEXEC)
        try:
            data = memoryview(text.encode("ascii"))
            while data:
                data = data[os.write(fd, data) :]
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    import tempfile  # only here: it and shutil would stay resident in every worker

    with tempfile.TemporaryDirectory(prefix="passerelle-pem-") as directory:
        path = Path(directory) / "pem"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(text)
        yield str(path)
