"""The L7 HTTP/1.1 proxy end to end: framing, keep-alive and pooling, 100-continue, upgrades,
connection authentication and header options, with a real engine and real sockets."""

from __future__ import annotations

import http.client
import json
import os
import time

import gevent
import pytest

from support.http_peers import (
    UPGRADE_REQUEST,
    Message,
    RawServer,
    Stream,
    curl_json,
    l7_service,
    response,
    serving,
    sha256,
    shared_deployer,
    websocket_echo,
)

# One worker: every client connection shares one pool of server connections, which is
# what pooling and NTLM pinning are about.
l7 = shared_deployer("l7", workers=1)


def echo_request(message: Message) -> bytes:
    """Answers with what the server saw: path, framing and a digest of the body."""
    seen = {
        "path": message.head.target.decode(),
        "length": len(message.body),
        "sha256": sha256(message.body),
        "chunked": message.head.chunked,
        "content_length": message.head.content_length,
    }
    return response(200, json.dumps(seen).encode())


def get(stream: Stream, path: str, host: str = "app.test", method: str = "GET") -> Message:
    stream.send(f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    return stream.response(method.encode())


# -- keep-alive and pooling ------------------------------------------------------------------


def test_one_client_connection_many_requests_few_server_connections(l7, servers):
    backend = servers.http("fe0")
    [port] = l7.deploy(l7_service(backend))
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    client_sockets = set()
    server_sides = []
    for i in range(20):
        conn.request("GET", f"/r{i}")
        answer = conn.getresponse()
        client_sockets.add(conn.sock.getsockname())
        seen = json.loads(answer.read())
        assert answer.status == 200 and seen["path"] == f"/r{i}"
        server_sides.append(seen["connection"])
    conn.close()
    assert len(client_sockets) == 1, "the proxy closed the keep-alive client connection"
    assert len(backend.seen) == 20
    # Sequential requests reuse one pooled server connection.
    assert len(set(server_sides)) == 1, server_sides


# -- body framing ----------------------------------------------------------------------------


def test_chunked_request_body_of_odd_chunk_sizes_arrives_intact(l7, raw):
    server = raw(serving(echo_request))
    [port] = l7.deploy(l7_service(server))
    payload = os.urandom(1 << 20)
    client = Stream.connect(port)
    client.send(b"POST /upload HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n")
    sizes = [1, 3, 4093, 7, 65537, 10007, 2, 131071, 99991]
    offset = i = 0
    while offset < len(payload):
        piece = payload[offset : offset + sizes[i % len(sizes)]]
        extension = b";part=%d" % i if i % 3 == 0 else b""
        client.send(b"%x%s\r\n%s\r\n" % (len(piece), extension, piece))
        offset += len(piece)
        i += 1
    client.send(b"0\r\nX-Checksum: none\r\n\r\n")
    answer = client.response()
    assert answer.status == 200
    seen = answer.json()
    assert seen["length"] == len(payload)
    assert server.requests[0].body == payload
    assert seen["chunked"] or seen["content_length"] == len(payload)
    # The connection is still in step: a next request is answered.
    assert get(client, "/after").json()["path"] == "/after"
    client.close()


def chunked_response(parts: list[bytes]) -> bytes:
    framed = b"".join(
        b"%x%s\r\n%s\r\n" % (len(p), b";x=y" if i == 1 else b"", p) for i, p in enumerate(parts)
    )
    return (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/octet-stream"
        b"\r\n\r\n" + framed + b"0\r\nX-Trailer: t\r\n\r\n"
    )


def test_chunked_response_reaches_the_client_intact_and_framed(l7, raw):
    parts = [os.urandom(n) for n in (1, 17, 4099, 70001, 3)]
    server = raw(
        serving(
            lambda m: chunked_response(parts) if m.head.target == b"/chunked" else echo_request(m)
        )
    )
    [port] = l7.deploy(l7_service(server))
    client = Stream.connect(port)
    answer = get(client, "/chunked")
    assert answer.status == 200
    assert answer.head.chunked
    assert answer.body == b"".join(parts)
    assert get(client, "/next").json()["path"] == "/next"
    assert server.accepted == 1
    client.close()


def test_close_delimited_response_is_rechunked_for_a_keepalive_client(l7, raw):
    body = os.urandom(200_000)

    def answer_then_close(stream: Stream, server: RawServer, index: int) -> None:
        message = stream.request()
        assert message is not None
        server.requests.append(message)
        stream.send(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + body)

    server = raw(answer_then_close)
    [port] = l7.deploy(l7_service(server))
    client = Stream.connect(port)
    first = get(client, "/one")
    assert first.status == 200
    assert first.head.chunked, first.head.raw
    assert first.head.get(b"connection") != b"close"
    assert first.body == body
    second = get(client, "/two")
    assert second.body == body
    assert [r.head.target for r in server.requests] == [b"/one", b"/two"]
    assert server.accepted == 2
    client.close()


def test_http10_client_gets_a_chunked_response_dechunked(l7, raw):
    parts = [b"alpha", b"-" * 5000, b"omega"]
    server = raw(serving(lambda m: chunked_response(parts)))
    [port] = l7.deploy(l7_service(server))
    client = Stream.connect(port)
    client.send(b"GET / HTTP/1.0\r\nHost: app.test\r\n\r\n")
    head = client.head()
    assert head is not None and head.status == 200
    assert head.get(b"transfer-encoding") is None, "HTTP/1.0 clients do not know chunked"
    assert client.until_close() == b"".join(parts)


def test_curl_chunked_upload_with_expect_reaches_the_sample_server(l7, servers, tmp_path):
    backend = servers.http("fe0")
    [port] = l7.deploy(l7_service(backend))
    upload = tmp_path / "upload.bin"
    upload.write_bytes(os.urandom(1 << 20))
    seen = curl_json(
        "-H",
        "Transfer-Encoding: chunked",
        "-H",
        "Expect: 100-continue",
        "--data-binary",
        f"@{upload}",
        f"http://127.0.0.1:{port}/upload",
    )
    assert seen["method"] == "POST" and seen["body_length"] == 1 << 20


# -- Expect: 100-continue ---------------------------------------------------------------------


def test_100_continue_is_relayed_before_the_client_sends_its_body(l7, raw):
    payload = os.urandom(300_000)

    def continue_then_read(stream: Stream, server: RawServer, index: int) -> None:
        head = stream.head()
        assert head is not None
        server.requests.append(Message(head))
        if not stream.idle_for(0.2):
            server.errors.append("body arrived before 100 Continue")
        stream.send(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = stream.exact(head.content_length or 0)
        stream.send(response(200, sha256(body).encode()))

    server = raw(continue_then_read)
    [port] = l7.deploy(l7_service(server))
    client = Stream.connect(port)
    client.send(
        b"PUT /file HTTP/1.1\r\nHost: app.test\r\nExpect: 100-continue\r\n"
        b"Content-Length: %d\r\n\r\n" % len(payload)
    )
    client.sock.settimeout(0.9)  # below the proxy's own wait for a 100: it must be relayed
    interim = client.head()
    client.sock.settimeout(5)
    assert interim is not None and interim.status == 100
    client.send(payload)
    final = client.response()
    assert final.status == 200
    assert final.body == sha256(payload).encode()
    assert server.requests[0].head.get(b"expect") == b"100-continue"
    assert server.errors == []


@pytest.mark.parametrize("status", [417, 401])
def test_final_status_without_100_continue_spares_the_body(l7, raw, status):
    def refuse(stream: Stream, server: RawServer, index: int) -> None:
        # Keeps the connection and discards the body it refused, as RFC 9110 lets servers do:
        # a proxy that reused this connection for another request would feed it the body.
        head = stream.head()
        assert head is not None
        server.requests.append(Message(head, connection=index))
        if head.get(b"expect"):
            stream.send(response(status, b"no"))
            stream.exact(head.content_length or 0)
        else:
            stream.send(response(200, b"fresh"))
        serving(lambda m: response(200, b"fresh"))(stream, server, index)

    server = raw(refuse)
    [port] = l7.deploy(l7_service(server))
    client = Stream.connect(port)
    client.send(
        b"POST /form HTTP/1.1\r\nHost: app.test\r\nExpect: 100-continue\r\n"
        b"Content-Length: 1000\r\n\r\n"
    )
    final = client.response()
    assert final.status == status
    assert final.body == b"no"
    client.close()
    other = Stream.connect(port)
    other.sock.settimeout(3)
    assert get(other, "/next").body == b"fresh"
    assert server.accepted == 2
    other.close()


# -- Upgrade ---------------------------------------------------------------------------------


def test_websocket_upgrade_tunnels_bytes_both_ways(l7, raw):
    server = raw(websocket_echo)
    [port] = l7.deploy(l7_service(server))
    client = Stream.connect(port)
    client.send(UPGRADE_REQUEST + b"client-first")
    head = client.head()
    assert head is not None and head.status == 101, head
    assert head.get(b"upgrade") == b"websocket"
    assert client.exact(len(b"server-first")) == b"server-first"
    assert client.exact(len(b"echo:client-first")) == b"echo:client-first"
    for i in range(3):
        message = b"ping-%d" % i
        client.send(message)
        assert client.exact(len(message) + 5) == b"echo:" + message
    seen = server.requests[0].head
    assert seen.get(b"upgrade") == b"websocket"
    assert b"upgrade" in (seen.get(b"connection") or b"").lower()
    client.close()


def test_refused_upgrade_does_not_leave_the_client_in_tunnel_mode(l7, raw):
    server = raw(serving(lambda m: response(401, b"log in first")))
    [port] = l7.deploy(l7_service(server))
    client = Stream.connect(port)
    client.send(UPGRADE_REQUEST)
    refused = client.response()
    assert refused.status == 401 and refused.body == b"log in first"
    if refused.head.get(b"connection") == b"close":
        assert client.closed_within(2)
    else:
        assert get(client, "/plain").status == 401


# -- bodiless responses and pipelining ----------------------------------------------------------


def test_head_204_and_304_forward_no_body_and_keep_alive(l7, raw):
    def answer(message: Message) -> bytes:
        target = message.head.target
        if message.head.method == b"HEAD":
            return b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nContent-Type: text/html\r\n\r\n"
        if target == b"/204":
            return b"HTTP/1.1 204 No Content\r\nX-Kind: empty\r\n\r\n"
        if target == b"/304":
            return b'HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\nContent-Length: 10\r\n\r\n'
        return response(200, b"end")

    server = raw(serving(answer))
    [port] = l7.deploy(l7_service(server))
    client = Stream.connect(port)
    head = get(client, "/page", method="HEAD")
    assert head.status == 200 and head.head.get(b"content-length") == b"1234"
    no_content = get(client, "/204")
    assert no_content.status == 204 and no_content.head.get(b"x-kind") == b"empty"
    assert no_content.head.get(b"transfer-encoding") is None
    not_modified = get(client, "/304")
    assert not_modified.status == 304 and not_modified.head.get(b"etag") == b'"v1"'
    last = get(client, "/end")
    assert last.status == 200 and last.body == b"end"
    assert client.idle_for(0.3), f"stray bytes after the last response: {client.buffer!r}"
    assert server.accepted == 1
    client.close()


def test_pipelined_requests_are_answered_in_order(l7, servers):
    backend = servers.http("fe0")
    [port] = l7.deploy(l7_service(backend))
    client = Stream.connect(port)
    client.send(
        b"GET /one HTTP/1.1\r\nHost: app.test\r\n\r\n"
        b"POST /two HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\n\r\nhello"
        b"GET /three HTTP/1.1\r\nHost: app.test\r\n\r\n"
    )
    answers = [client.response().json() for _ in range(3)]
    assert [a["path"] for a in answers] == ["/one", "/two", "/three"]
    assert answers[1]["body_length"] == 5
    client.close()


# -- NTLM / Negotiate -------------------------------------------------------------------------


def ask(conn: http.client.HTTPConnection, authorization: str | None = None) -> tuple[int, str]:
    conn.request("GET", "/owa", headers={"Authorization": authorization} if authorization else {})
    answer = conn.getresponse()
    return answer.status, answer.read().decode()


def test_ntlm_authenticated_server_connection_stays_with_its_client(l7, servers):
    front_ends = [servers.http(f"fe{i}", ntlm=True) for i in range(2)]
    [port] = l7.deploy(l7_service(*front_ends, scheduling="round_robin"))
    alice = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    status, _ = ask(alice, "NTLM negotiate")
    assert status == 401
    status, body = ask(alice, "NTLM user:alice")
    assert status == 200 and json.loads(body)["user"] == "alice"
    bob = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    for i in range(12):
        status, body = ask(alice)
        assert status == 200 and json.loads(body)["user"] == "alice", (i, body)
        status, body = ask(bob)
        assert status == 401 and "alice" not in body, (i, body)
        # A new connection each time as well: the idle pool is where it would find alice's.
        carol = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        status, body = ask(carol)
        carol.close()
        assert status == 401 and "alice" not in body, (i, body)
    served_alice = {
        r["connection"] for fe in front_ends for r in fe.seen if r.get("user") == "alice"
    }
    assert len(served_alice) == 1
    alice.close()
    bob.close()


# -- header options ---------------------------------------------------------------------------


def test_forwarded_headers_and_header_options(l7, servers):
    backend = servers.http("fe0")
    options = {
        "request_add": {"X-Site": "edge"},
        "request_remove": ["X-Secret"],
        "response_add": {"X-Proxy": "passerelle"},
        "response_remove": ["X-Served-By"],
    }
    ports = l7.deploy(
        l7_service(backend, headers={**options, "x_forwarded_for": "append"}),
        l7_service(backend, headers={**options, "x_forwarded_for": "replace"}),
        l7_service(backend, headers={"x_forwarded_for": "off", "x_forwarded_proto": False}),
    )
    sent = {
        "Host": "app.contoso.com:8443",
        "X-Forwarded-For": "10.9.9.9",
        "X-Forwarded-Proto": "https",
        "X-Secret": "s3cr3t",
        "X-Site": "spoofed",
        "X-Keep": "kept",
    }
    seen = []
    for port in ports:
        conn = http.client.HTTPConnection(
            "127.0.0.1", port, timeout=5, source_address=("127.0.50.1", 0)
        )
        conn.request("GET", "/h", headers=sent)
        answer = conn.getresponse()
        seen.append((json.loads(answer.read()), answer))
        conn.close()
    (append, a_resp), (replace, r_resp), (off, o_resp) = seen
    assert append["headers"]["x-forwarded-for"] == "10.9.9.9, 127.0.50.1"
    assert replace["headers"]["x-forwarded-for"] == "127.0.50.1"
    assert off["headers"]["x-forwarded-for"] == "10.9.9.9"
    assert append["headers"]["x-forwarded-proto"] == "http"  # the client's claim is replaced
    assert off["headers"]["x-forwarded-proto"] == "https"  # left alone when switched off
    for h in (append, replace):
        assert h["host"] == "app.contoso.com:8443"
        assert h["headers"]["x-site"] == "edge"
        assert "x-secret" not in h["headers"]
        assert h["headers"]["x-keep"] == "kept"
    assert off["headers"]["x-secret"] == "s3cr3t" and off["headers"]["x-site"] == "spoofed"
    for answer in (a_resp, r_resp):
        assert answer.getheader("X-Proxy") == "passerelle"
        assert answer.getheader("X-Served-By") is None
    assert o_resp.getheader("X-Served-By") == "fe0" and o_resp.getheader("X-Proxy") is None


def test_headers_named_by_connection_stay_on_their_hop(l7, raw):
    """RFC 9110 7.6.1: what a Connection header names is for the next hop only, both ways;
    the same Connection value on later messages (as browsers and servers send it) too."""
    server = raw(
        serving(
            lambda m: response(
                200,
                b"ok",
                [
                    (b"Connection", b"keep-alive, X-Private"),
                    (b"X-Private", b"server-side"),
                    (b"Keep-Alive", b"timeout=5"),
                    (b"X-Public", b"yes"),
                ],
            )
        )
    )
    [port] = l7.deploy(l7_service(server))
    client = Stream.connect(port)
    try:
        for _ in range(3):
            client.send(
                b"GET /c HTTP/1.1\r\nHost: app.test\r\nConnection: keep-alive, X-Hop\r\n"
                b"X-Hop: client-side\r\nKeep-Alive: 300\r\nX-Kept: 1\r\n\r\n"
            )
            answer = client.response(b"GET")
            assert answer.head.status == 200 and answer.body == b"ok"
            assert answer.head.get(b"x-public") == b"yes"
            assert answer.head.get(b"x-private") is None, answer.head.raw
            assert answer.head.get(b"keep-alive") is None, answer.head.raw
    finally:
        client.close()
    assert len(server.requests) == 3
    for request in server.requests:
        assert request.head.get(b"x-kept") == b"1"
        assert request.head.get(b"x-hop") is None, request.head.raw
        assert request.head.get(b"keep-alive") is None, request.head.raw
        assert request.head.get(b"connection") is None, request.head.raw


def test_a_response_the_proxy_would_not_change_reaches_the_client_byte_for_byte(l7, raw):
    """A plain response whose head, forwarded, would say the same goes on as the server sent
    it, a last ``Connection: keep-alive`` included; one with a hop-by-hop header to drop, or
    to a client that asked to close, is rebuilt."""
    unchanged = (
        b"HTTP/1.1 200 Fine\r\nServer: raw\r\nContent-Type: text/plain\r\n"
        b"Content-Length: 3\r\nConnection: keep-alive\r\n\r\nok\n"
    )
    with_hop_header = (
        b"HTTP/1.1 200 Fine\r\nContent-Length: 3\r\nKeep-Alive: timeout=5\r\n"
        b"Connection: Keep-Alive\r\n\r\nok\n"
    )
    server = raw(serving(lambda m: unchanged if m.head.target == b"/same" else with_hop_header))
    [port] = l7.deploy(l7_service(server))
    client = Stream.connect(port)
    try:
        # The first request opens a server connection (the general code), later ones find it
        # idle (the lane): both send the same bytes.
        for _ in range(3):
            client.send(b"GET /same HTTP/1.1\r\nHost: app.test\r\n\r\n")
            answer = client.response()
            assert answer.head.raw + answer.body == unchanged
        client.send(b"GET /other HTTP/1.1\r\nHost: app.test\r\n\r\n")
        answer = client.response()
        assert answer.body == b"ok\n"
        assert answer.head.get(b"keep-alive") is None, answer.head.raw
        assert answer.head.get(b"connection") is None, answer.head.raw
        client.send(b"GET /same HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n")
        answer = client.response()
        assert answer.body == b"ok\n"
        assert answer.head.get(b"connection") == b"close", answer.head.raw
        assert client.closed_within(2.0)
    finally:
        client.close()
    assert len(server.requests) == 5


def test_a_request_head_nothing_is_left_out_of_goes_on_as_it_came(l7, raw):
    """A plain HTTP/1.1 request head with no header to leave out reaches the server as the
    client wrote it, the X-Forwarded-* lines after its last header; one with a hop-by-hop
    header is rebuilt without it. The same through the general code (the first request, which
    opens a server connection) and the lane (later ones, on the idle connection)."""
    server = raw(serving(lambda m: response(200, b"ok", [])))
    [port] = l7.deploy(l7_service(server))
    client = Stream.connect(port, source="127.0.60.1")
    sent = b"GET /as/sent?q=1 HTTP/1.1\r\nhOsT: app.test\r\nX-Kept:  1 \r\nAccept: */*\r\n"
    expected = sent + b"X-Forwarded-For: 127.0.60.1\r\nX-Forwarded-Proto: http\r\n\r\n"
    try:
        for _ in range(3):
            client.send(sent + b"\r\n")
            assert client.response().body == b"ok"
        client.send(sent + b"Keep-Alive: 300\r\n\r\n")
        assert client.response().body == b"ok"
    finally:
        client.close()
    assert [request.head.raw for request in server.requests] == [expected] * 4


# -- timeouts and stale server connections -----------------------------------------------------


def test_idle_keepalive_client_is_closed_after_idle_timeout(l7, servers):
    backend = servers.http("fe0")
    [port] = l7.deploy(l7_service(backend, idle_timeout=1))
    client = Stream.connect(port)
    assert get(client, "/").status == 200
    started = time.monotonic()
    assert not client.closed_within(0.5), "closed before the idle timeout"
    assert client.closed_within(2.5), "still open 3 s after the last response"
    assert time.monotonic() - started >= 0.5


def test_pooled_connection_closed_by_the_server_is_not_used(l7, raw):
    def short_keepalive(stream: Stream, server: RawServer, index: int) -> None:
        # Answers, then closes if no next request comes within 0.2 s.
        while (message := stream.request()) is not None:
            server.requests.append(message)
            stream.send(response(200, b"ok %d" % index))
            stream.sock.settimeout(0.2)
            try:
                if not stream._more():
                    return
            except TimeoutError:
                return
            finally:
                stream.sock.settimeout(10)

    server = raw(short_keepalive)
    [port] = l7.deploy(l7_service(server))
    client = Stream.connect(port)
    assert get(client, "/a").body == b"ok 0"
    gevent.sleep(0.5)
    assert get(client, "/b").body == b"ok 1"
    client.close()


def first_answered_then_dropped(stream: Stream, server: RawServer, index: int) -> None:
    """Answers the first request of a connection, drops it at the second: the race in which a
    server closes an idle connection just as the proxy reuses it."""
    first = stream.request()
    if first is None:
        return
    server.requests.append(first)
    stream.send(response(200, b"first on %d" % index))
    second = stream.request()
    if second is not None:
        server.requests.append(second)


def test_request_on_a_connection_the_server_drops_is_retried(l7, raw):
    server = raw(first_answered_then_dropped)
    [port] = l7.deploy(l7_service(server))
    client = Stream.connect(port)
    client.sock.settimeout(3)
    assert get(client, "/a").body == b"first on 0"
    assert get(client, "/b").body == b"first on 1"
    assert get(client, "/c").status == 200
    assert server.accepted >= 2


def test_request_with_body_on_a_dropped_connection_fails_cleanly(l7, raw):
    server = raw(first_answered_then_dropped)
    [port] = l7.deploy(l7_service(server))
    client = Stream.connect(port)
    client.sock.settimeout(3)
    assert get(client, "/a").status == 200
    client.send(b"POST /b HTTP/1.1\r\nHost: app.test\r\nContent-Length: 4\r\n\r\ndata")
    # Either resent on a new connection or refused; never a hang or a silent close.
    assert client.response().status in (200, 502)


def test_server_closing_without_an_answer_gives_502(l7, raw):
    server = raw(serving(lambda m: None))
    [port] = l7.deploy(l7_service(server))
    client = Stream.connect(port)
    client.sock.settimeout(3)
    answer = get(client, "/")
    assert answer.status == 502, answer.head.raw


def test_malformed_response_gives_502(l7, raw):
    server = raw(
        serving(lambda m: b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n")
    )
    [port] = l7.deploy(l7_service(server))
    client = Stream.connect(port)
    client.sock.settimeout(3)
    assert get(client, "/").status == 502
