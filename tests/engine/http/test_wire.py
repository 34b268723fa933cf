"""Serialisation helpers: exact bytes, and round trips through the codec's readers."""

from __future__ import annotations

import pytest

from passerelle.engine.http.codec import (
    END_OF_MESSAGE,
    Body,
    Event,
    RequestHead,
    RequestReader,
    ResponseHead,
    ResponseReader,
)
from passerelle.engine.http.wire import (
    HOP_BY_HOP,
    LAST_CHUNK,
    DropSet,
    chunk,
    connection_tokens,
    error_response,
    extra_connection_options,
    reason_phrase,
    request_head_bytes,
    response_head_bytes,
    status_line,
    strip_hop_by_hop,
)


def drain(reader: RequestReader | ResponseReader) -> list[Event]:
    out: list[Event] = []
    while (event := reader.next_event()) is not None:
        out.append(event)
    return out


def test_request_head_bytes_exact_and_parseable() -> None:
    headers = [(b"Host", b"app.test"), (b"X-Forwarded-For", b"127.0.0.1"), (b"Accept", b"*/*")]
    raw = request_head_bytes(b"GET", b"/a?b=1", headers)
    assert raw == (
        b"GET /a?b=1 HTTP/1.1\r\nHost: app.test\r\nX-Forwarded-For: 127.0.0.1\r\n"
        b"Accept: */*\r\n\r\n"
    )
    reader = RequestReader()
    reader.feed(raw)
    head, end = drain(reader)
    assert isinstance(head, RequestHead)
    assert (head.method, head.target, head.headers) == (b"GET", b"/a?b=1", headers)
    assert end is END_OF_MESSAGE


def test_request_head_bytes_without_headers() -> None:
    assert request_head_bytes(b"OPTIONS", b"*", []) == b"OPTIONS * HTTP/1.1\r\n\r\n"


def test_response_head_bytes_exact_and_parseable() -> None:
    raw = response_head_bytes(404, b"Not Found", [(b"Content-Length", b"0")])
    assert raw == b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
    reader = ResponseReader()
    reader.feed(raw)
    head, end = drain(reader)
    assert isinstance(head, ResponseHead)
    assert (head.status, head.reason, head.content_length) == (404, b"Not Found", 0)
    assert end is END_OF_MESSAGE


def test_response_head_bytes_empty_reason_keeps_the_space() -> None:
    assert response_head_bytes(299, b"", []) == b"HTTP/1.1 299 \r\n\r\n"


@pytest.mark.parametrize(
    ("data", "framed"),
    [
        (b"a", b"1\r\na\r\n"),
        (b"x" * 26, b"1a\r\n" + b"x" * 26 + b"\r\n"),
        (b"\r\n0\r\n\r\n", b"7\r\n\r\n0\r\n\r\n\r\n"),
    ],
)
def test_chunk_framing(data: bytes, framed: bytes) -> None:
    assert chunk(data) == framed


def test_empty_chunk_is_refused() -> None:
    with pytest.raises(ValueError):
        chunk(b"")


def test_chunks_round_trip_through_the_reader() -> None:
    pieces = [b"hello ", b"\r\n0\r\n\r\n", b"x" * 5000, b"!"]
    head = response_head_bytes(200, b"OK", [(b"Transfer-Encoding", b"chunked")])
    raw = head + b"".join(chunk(p) for p in pieces) + LAST_CHUNK
    assert LAST_CHUNK == b"0\r\n\r\n"
    reader = ResponseReader()
    reader.feed(raw)
    events = drain(reader)
    assert isinstance(events[0], ResponseHead)
    assert events[-1] is END_OF_MESSAGE
    assert b"".join(e.data for e in events if isinstance(e, Body)) == b"".join(pieces)


def test_error_response_closing() -> None:
    raw = error_response(503, "No real server is available.")
    reader = ResponseReader()
    reader.feed(raw)
    head, body, end = drain(reader)
    assert isinstance(head, ResponseHead)
    assert (head.status, head.reason) == (503, b"Service Unavailable")
    assert head.get(b"connection") == b"close"
    assert head.get(b"cache-control") == b"no-store"
    assert head.get(b"content-type") == b"text/plain; charset=utf-8"
    assert head.keep_alive is False
    assert body == Body(b"No real server is available.\n")
    assert head.content_length == len(body.data)
    assert end is END_OF_MESSAGE


def test_error_response_keep_alive_and_extra_headers() -> None:
    raw = error_response(
        301, "Moved.\n", close=False, extra_headers=[(b"Location", b"https://app.test/")]
    )
    reader = ResponseReader()
    reader.feed(raw)
    head, body, _ = drain(reader)
    assert isinstance(head, ResponseHead)
    assert head.get(b"connection") is None
    assert head.keep_alive is True
    assert head.get(b"location") == b"https://app.test/"
    assert body == Body(b"Moved.\n")  # a message already ending in a newline keeps one


def test_error_response_utf8_length() -> None:
    raw = error_response(400, "requête invalide")
    assert raw.endswith(b"\r\n\r\nrequ\xc3\xaate invalide\n")
    assert b"Content-Length: 18\r\n" in raw


@pytest.mark.parametrize(
    ("status", "phrase"),
    [(200, b"OK"), (404, b"Not Found"), (431, b"Request Header Fields Too Large"), (599, b"")],
)
def test_reason_phrase(status: int, phrase: bytes) -> None:
    assert reason_phrase(status) == phrase


def test_hop_by_hop_set() -> None:
    assert (
        frozenset(
            {
                b"connection",
                b"keep-alive",
                b"proxy-connection",
                b"te",
                b"trailer",
                b"transfer-encoding",
                b"upgrade",
            }
        )
        == HOP_BY_HOP
    )


def test_connection_tokens() -> None:
    headers = [
        (b"Host", b"a"),
        (b"Connection", b"Keep-Alive, X-Secret ,,"),
        (b"connection", b"\tUpgrade"),
        (b"X-Connection", b"not-this"),
    ]
    assert connection_tokens(headers) == frozenset({b"keep-alive", b"x-secret", b"upgrade"})
    assert connection_tokens([(b"Host", b"a")]) == frozenset()


def test_strip_hop_by_hop() -> None:
    headers = [
        (b"Host", b"a"),
        (b"Connection", b"close, X-Private"),
        (b"x-private", b"1"),
        (b"Keep-Alive", b"timeout=5"),
        (b"Transfer-Encoding", b"chunked"),
        (b"TE", b"trailers"),
        (b"Upgrade", b"websocket"),
        (b"Proxy-Connection", b"keep-alive"),
        (b"Trailer", b"X-Sum"),
        (b"Accept", b"*/*"),
    ]
    assert strip_hop_by_hop(headers) == [(b"Host", b"a"), (b"Accept", b"*/*")]


def test_status_line_follows_the_reason_the_server_gave() -> None:
    # Lines are kept per status: the same status with another reason must not reuse one.
    assert status_line(200, b"OK") == b"HTTP/1.1 200 OK"
    assert status_line(200, b"OK") == b"HTTP/1.1 200 OK"
    assert status_line(200, b"Fine") == b"HTTP/1.1 200 Fine"
    assert status_line(200, b"") == b"HTTP/1.1 200 "
    assert status_line(599, b"X") == b"HTTP/1.1 599 X"


def test_a_drop_set_leaves_out_its_names_in_any_case_and_keeps_the_rest_in_order() -> None:
    drop = DropSet(HOP_BY_HOP | frozenset({b"x-secret"}))
    headers = [
        (b"Host", b"a"),
        (b"CONNECTION", b"keep-alive, X-Trace"),
        (b"X-Secret", b"1"),
        (b"X-Trace", b"2"),  # named by Connection: left out once the options are added
        (b"Keep-Alive", b"timeout=5"),
        (b"Content-Type", b"text/plain"),
        (b"Te", b"trailers"),
        (b"Set-Cookie", b"s=1"),
    ]
    assert drop.head_lines(headers) == [
        b"Host: a",
        b"X-Trace: 2",
        b"Content-Type: text/plain",
        b"Set-Cookie: s=1",
    ]
    with_options = drop | extra_connection_options([b"keep-alive, X-Trace"])
    assert with_options.head_lines(headers) == [
        b"Host: a",
        b"Content-Type: text/plain",
        b"Set-Cookie: s=1",
    ]


def test_a_drop_set_keeps_the_received_line_of_each_header_it_keeps() -> None:
    drop = DropSet(HOP_BY_HOP)
    received = [b"GET / HTTP/1.1", b"Host:a", b"CONNECTION: close", b"X-Pad:  b \t"]
    assert drop.kept_lines(received, [4, 10, 5]) == [b"Host:a", b"X-Pad:  b \t"]
