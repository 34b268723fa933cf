"""The sans-IO HTTP/1.1 readers: framing, refusals, pipelining, limits, upgrades."""

from __future__ import annotations

import httptools
import pytest

from passerelle.engine.http.codec import (
    END_OF_MESSAGE,
    Body,
    EndOfMessage,
    Event,
    HttpError,
    RequestHead,
    RequestReader,
    ResponseHead,
    ResponseReader,
    Upgraded,
)

Reader = RequestReader | ResponseReader


def drain(reader: Reader) -> list[Event]:
    out: list[Event] = []
    while (event := reader.next_event()) is not None:
        out.append(event)
    return out


def feed_all(reader: Reader, data: bytes) -> list[Event]:
    reader.feed(data)
    return drain(reader)


def feed_bytewise(reader: Reader, data: bytes) -> list[Event]:
    out: list[Event] = []
    for i in range(len(data)):
        reader.feed(data[i : i + 1])
        out += drain(reader)
    return out


def merge_bodies(events: list[Event]) -> list[Event]:
    """Joins adjacent Body events, so that differently split feeds compare equal."""
    out: list[Event] = []
    for event in events:
        if isinstance(event, Body) and out and isinstance(out[-1], Body):
            out[-1] = Body(out[-1].data + event.data)
        else:
            out.append(event)
    return out


def refusal(reader: Reader, data: bytes, *, bytewise: bool = False) -> int:
    with pytest.raises(HttpError) as info:
        if bytewise:
            feed_bytewise(reader, data)
        else:
            reader.feed(data)
    return info.value.status


def req(headers: bytes = b"", body: bytes = b"", line: bytes = b"GET / HTTP/1.1") -> bytes:
    return line + b"\r\nHost: example.test\r\n" + headers + b"\r\n" + body


CHUNKED = b"Transfer-Encoding: chunked\r\n"

# (id, raw request, status when fed at once, status when fed one byte at a time)
REQUEST_REFUSALS = [
    ("cl-and-te", req(b"Content-Length: 5\r\n" + CHUNKED, b"0\r\n\r\n"), 400, 400),
    ("te-and-cl", req(CHUNKED + b"Content-Length: 5\r\n", b"0\r\n\r\n"), 400, 400),
    ("cl-duplicate-equal", req(b"Content-Length: 5\r\nContent-Length: 5\r\n", b"hello"), 400, 400),
    ("cl-duplicate-differ", req(b"Content-Length: 5\r\nContent-Length: 6\r\n"), 400, 400),
    ("cl-list", req(b"Content-Length: 5, 5\r\n", b"hello"), 400, 400),
    ("cl-plus", req(b"Content-Length: +5\r\n", b"hello"), 400, 400),
    ("cl-negative", req(b"Content-Length: -1\r\n"), 400, 400),
    ("cl-hex", req(b"Content-Length: 0x10\r\n"), 400, 400),
    ("cl-exponent", req(b"Content-Length: 1e3\r\n"), 400, 400),
    ("cl-empty", req(b"Content-Length: \r\n"), 400, 400),
    ("cl-trailing-junk", req(b"Content-Length: 5x\r\n"), 400, 400),
    ("cl-leading-junk", req(b"Content-Length: x5\r\n"), 400, 400),
    ("cl-inner-space", req(b"Content-Length: 1 2\r\n"), 400, 400),
    ("cl-overflow", req(b"Content-Length: 99999999999999999999999\r\n"), 400, 400),
    ("te-chunked-identity", req(b"Transfer-Encoding: chunked, identity\r\n"), 400, 400),
    ("te-gzip-chunked", req(b"Transfer-Encoding: gzip, chunked\r\n", b"0\r\n\r\n"), 400, 400),
    ("te-identity", req(b"Transfer-Encoding: identity\r\n", b"0\r\n\r\n"), 400, 400),
    ("te-xchunked", req(b"Transfer-Encoding: xchunked\r\n", b"0\r\n\r\n"), 400, 400),
    ("te-vertical-tab", req(b"Transfer-Encoding: chunked\x0b\r\n", b"0\r\n\r\n"), 400, 400),
    ("te-duplicate", req(CHUNKED + CHUNKED, b"0\r\n\r\n"), 400, 400),
    (
        "te-on-http10",
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        400,
        400,
    ),
    ("obs-fold-space", req(b"X-A: one\r\n two\r\n"), 400, 400),
    ("obs-fold-tab", req(b"X-A: one\r\n\ttwo\r\n"), 400, 400),
    ("first-line-folded", b"GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400, 400),
    ("space-before-colon", req(b"X-A : one\r\n"), 400, 400),
    ("tab-before-colon", req(b"X-A\t: one\r\n"), 400, 400),
    ("te-space-before-colon", req(b"Transfer-Encoding : chunked\r\n", b"0\r\n\r\n"), 400, 400),
    ("name-at-sign", req(b"X@A: one\r\n"), 400, 400),
    ("name-inner-space", req(b"X A: one\r\n"), 400, 400),
    ("name-empty", req(b": one\r\n"), 400, 400),
    ("name-nul", req(b"X\x00A: one\r\n"), 400, 400),
    ("name-non-ascii", req(b"X\xc3\xa9: one\r\n"), 400, 400),
    ("value-nul", req(b"X-A: o\x00ne\r\n"), 400, 400),
    ("value-cr", req(b"X-A: o\rne\r\n"), 400, 400),
    ("value-lf", req(b"X-A: o\nne\r\n"), 400, 400),
    ("value-ctl", req(b"X-A: o\x01ne\r\n"), 400, 400),
    ("value-del", req(b"X-A: o\x7fne\r\n"), 400, 400),
    ("bare-lf-everywhere", b"GET / HTTP/1.1\nHost: a\n\n", 400, 400),
    ("bare-lf-after-header", b"GET / HTTP/1.1\r\nHost: a\n\r\n", 400, 400),
    ("bare-lf-end-of-head", b"GET / HTTP/1.1\r\nHost: a\r\n\n", 400, 400),
    ("chunk-size-not-hex", req(CHUNKED, b"g\r\nhello\r\n0\r\n\r\n"), 400, 400),
    ("chunk-size-0x", req(CHUNKED, b"0x5\r\nhello\r\n0\r\n\r\n"), 400, 400),
    ("chunk-size-negative", req(CHUNKED, b"-5\r\nhello\r\n0\r\n\r\n"), 400, 400),
    ("chunk-size-overflow", req(CHUNKED, b"10000000000000000\r\nhello\r\n0\r\n\r\n"), 400, 400),
    ("chunk-size-empty", req(CHUNKED, b"\r\nhello\r\n0\r\n\r\n"), 400, 400),
    ("chunk-size-space", req(CHUNKED, b"5 \r\nhello\r\n0\r\n\r\n"), 400, 400),
    ("chunk-size-bare-lf", req(CHUNKED, b"5\nhello\r\n0\r\n\r\n"), 400, 400),
    ("chunk-data-no-crlf", req(CHUNKED, b"5\r\nhelloXX0\r\n\r\n"), 400, 400),
    ("chunk-data-bare-lf", req(CHUNKED, b"5\r\nhello\n0\r\n\r\n"), 400, 400),
    ("chunk-data-too-long", req(CHUNKED, b"3\r\nhello\r\n0\r\n\r\n"), 400, 400),
    ("target-with-space", b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400, 400),
    ("target-del", b"GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n", 400, 400),
    ("target-non-ascii", b"GET /\xff HTTP/1.1\r\nHost: a\r\n\r\n", 400, 400),
    ("space-after-version", b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400, 400),
    ("lowercase-protocol", b"GET / http/1.1\r\nHost: a\r\n\r\n", 400, 400),
    ("version-two-digits", b"GET / HTTP/1.10\r\nHost: a\r\n\r\n", 400, 400),
    ("method-bad-char", b"G@T / HTTP/1.1\r\nHost: a\r\n\r\n", 400, 400),
    ("tls-handshake", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400, 400),
    # a well-formed token that is no known method: 501, unless it arrives in slices
    ("method-unknown", b"FOO / HTTP/1.1\r\nHost: a\r\n\r\n", 501, 400),
    ("method-lowercase", b"get / HTTP/1.1\r\nHost: a\r\n\r\n", 501, 400),
    ("version-2.0", b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, 505),
    ("version-3.0", b"GET / HTTP/3.0\r\nHost: a\r\n\r\n", 505, 505),
    ("version-1.2", b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505, 505),
    ("version-0.9", b"GET / HTTP/0.9\r\nHost: a\r\n\r\n", 505, 505),
    ("http09-simple-request", b"GET /\r\n\r\n", 505, 505),
    ("h2-preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, 505),
    ("host-missing", b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", 400, 400),
    ("host-twice", req(b"Host: other.test\r\n"), 400, 400),
    ("host-twice-http10", b"GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n", 400, 400),
    ("connect", b"CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\n", 405, 405),
    (
        "upgrade-chunked-body",
        req(b"Connection: upgrade\r\nUpgrade: websocket\r\n" + CHUNKED, b"0\r\n\r\n"),
        400,
        400,
    ),
]


@pytest.mark.parametrize(
    ("data", "status", "bytewise_status"),
    [pytest.param(d, s, b, id=i) for i, d, s, b in REQUEST_REFUSALS],
)
def test_request_refusals(data: bytes, status: int, bytewise_status: int) -> None:
    assert refusal(RequestReader(), data) == status
    assert refusal(RequestReader(), data, bytewise=True) == bytewise_status


@pytest.mark.parametrize("plain_heads", [True, False], ids=["plain-heads", "llhttp-only"])
@pytest.mark.parametrize(
    ("data", "status", "bytewise_status"),
    [pytest.param(d, s, b, id=i) for i, d, s, b in REQUEST_REFUSALS],
)
def test_request_refusals_after_a_good_request(
    data: bytes, status: int, bytewise_status: int, plain_heads: bool
) -> None:
    # The same shape, pipelined behind a valid request: it must not slip through.
    reader = RequestReader(plain_heads=plain_heads)
    good = req(b"Content-Length: 2\r\n", b"ok")
    # 501 is only told at the start of the chunk llhttp reads; a plain request before it is
    # read apart, so the refused one starts that chunk.
    expected = 400 if status == 501 and not plain_heads else status
    assert refusal(reader, good + data) == expected


def test_refusal_drops_queued_events_and_sticks_until_reset() -> None:
    reader = RequestReader()
    with pytest.raises(HttpError) as info:
        reader.feed(req() + b"GET / HTTP/1.1\r\nHost: a\r\nX : y\r\n\r\n")
    assert info.value.status == 400
    assert info.value.reason.startswith("malformed request")
    assert reader.next_event() is None
    with pytest.raises(HttpError) as again:
        reader.feed(req())
    assert again.value.status == 400
    reader.reset()
    events = feed_all(reader, req())
    assert isinstance(events[0], RequestHead)
    assert events[1:] == [END_OF_MESSAGE]


def test_http_error_carries_status_and_reason() -> None:
    error = HttpError(413, "too big")
    assert (error.status, error.reason) == (413, "too big")
    assert str(error) == "413 too big"


# -- accepted requests --------------------------------------------------------------------

CURL_REQUEST = (
    b"POST /api/items?page=2&sort=asc HTTP/1.1\r\n"
    b"Host: 127.0.0.1:8080\r\n"
    b"User-Agent: curl/8.5.0\r\n"
    b"Accept: */*\r\n"
    b"Content-Type: application/json\r\n"
    b"Content-Length: 15\r\n"
    b"\r\n"
    b'{"name":"bolt"}'
)


def test_curl_request() -> None:
    events = feed_all(RequestReader(), CURL_REQUEST)
    assert len(events) == 3
    head, body, end = events
    assert isinstance(head, RequestHead)
    assert head.method == b"POST"
    assert head.target == b"/api/items?page=2&sort=asc"
    assert head.path == b"/api/items"
    assert head.version == b"1.1"
    assert head.headers == [
        (b"Host", b"127.0.0.1:8080"),
        (b"User-Agent", b"curl/8.5.0"),
        (b"Accept", b"*/*"),
        (b"Content-Type", b"application/json"),
        (b"Content-Length", b"15"),
    ]
    assert head.get(b"user-agent") == b"curl/8.5.0"
    assert head.get(b"host") == b"127.0.0.1:8080"
    assert head.get(b"cookie") is None
    assert head.keep_alive is True
    assert head.content_length == 15
    assert (head.chunked, head.upgrade, head.expect_continue) == (False, False, False)
    assert body == Body(b'{"name":"bolt"}')
    assert end is END_OF_MESSAGE


def test_header_names_keep_case_and_values_lose_whitespace() -> None:
    data = req(b"X-Thing:   spaced out \t \r\nx-thing:second\r\nX-Empty:\r\nX-Tab: a\tb\r\n")
    head = feed_all(RequestReader(), data)[0]
    assert isinstance(head, RequestHead)
    assert head.headers[1:] == [
        (b"X-Thing", b"spaced out"),
        (b"x-thing", b"second"),
        (b"X-Empty", b""),
        (b"X-Tab", b"a\tb"),
    ]
    assert head.get(b"x-thing") == b"spaced out"
    assert head.get_all(b"x-thing") == [b"spaced out", b"second"]
    assert head.get_all(b"x-missing") == []


def test_obs_text_in_values_passes() -> None:
    head = feed_all(RequestReader(), req(b"X-Name: caf\xc3\xa9\r\n"))[0]
    assert isinstance(head, RequestHead)
    assert head.get(b"x-name") == b"caf\xc3\xa9"


@pytest.mark.parametrize(
    ("target", "path"),
    [(b"/", b"/"), (b"/a/b?", b"/a/b"), (b"/a?x=1?y", b"/a"), (b"*", b"*")],
)
def test_path_drops_the_query(target: bytes, path: bytes) -> None:
    line = b"OPTIONS " + target + b" HTTP/1.1"
    head = feed_all(RequestReader(), req(line=line))[0]
    assert isinstance(head, RequestHead)
    assert (head.target, head.path) == (target, path)


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Client:  caf\xe9 \r\nx-client: 2\r\n\r\n",  # llhttp
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Client:  cafe \r\nx-client: 2\r\n\r\n",  # plain
    ],
)
def test_a_header_reads_as_text_for_rules_whichever_reading_took_it(data: bytes) -> None:
    head = feed_all(RequestReader(), data)[0]
    assert isinstance(head, RequestHead)
    expected = "caf\xe9" if b"\xe9" in data else "cafe"
    assert head.text("x-client") == expected  # the first value, OWS stripped
    assert head.text("x-missing") is None
    assert head.get_all(b"x-client") == [expected.encode("latin-1"), b"2"]


ALONE = b"GET /a HTTP/1.1\r\nHost: a\r\nX-Kept: 1\r\n\r\n"


@pytest.mark.parametrize(
    ("chunk", "whole"),
    [
        (ALONE, True),
        (ALONE + ALONE, False),  # pipelined: neither came alone
        (b"GET /a HTTP/1.0\r\nHost: a\r\n\r\n", False),  # its start line is rewritten
        (b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nok", False),
        (b"GET /a HTTP/1.1\r\nHost: a\r\nX: \xe9\r\n\r\n", False),  # not plain: llhttp's
    ],
    ids=["alone", "pipelined", "http10", "body", "obs-text"],
)
def test_a_request_that_came_alone_keeps_its_bytes(chunk: bytes, whole: bool) -> None:
    head = feed_all(RequestReader(), chunk)[0]
    assert isinstance(head, RequestHead)
    assert head.whole == (chunk if whole else b"")


def test_absolute_form_target_is_kept_as_sent() -> None:
    head = feed_all(RequestReader(), req(line=b"GET http://example.test/x?y HTTP/1.1"))[0]
    assert isinstance(head, RequestHead)
    assert head.target == b"http://example.test/x?y"


def test_http10_request_needs_no_host() -> None:
    head = feed_all(RequestReader(), b"GET / HTTP/1.0\r\n\r\n")[0]
    assert isinstance(head, RequestHead)
    assert head.version == b"1.0"
    assert head.get(b"host") is None


def test_te_chunked_is_case_insensitive() -> None:
    data = req(b"Transfer-Encoding: ChUnKeD \r\n", b"2\r\nhi\r\n0\r\n\r\n")
    events = feed_all(RequestReader(), data)
    assert isinstance(events[0], RequestHead)
    assert events[0].chunked is True
    assert events[0].content_length is None
    assert events[1:] == [Body(b"hi"), END_OF_MESSAGE]


def test_content_length_trailing_whitespace_is_ows() -> None:
    head = feed_all(RequestReader(), req(b"Content-Length: 2 \r\n", b"ok"))[0]
    assert isinstance(head, RequestHead)
    assert head.content_length == 2


def test_zero_content_length_has_no_body_event() -> None:
    events = feed_all(RequestReader(), req(b"Content-Length: 0\r\n"))
    assert isinstance(events[0], RequestHead)
    assert events[0].content_length == 0
    assert events[1:] == [END_OF_MESSAGE]


def test_known_extension_method_passes() -> None:
    head = feed_all(RequestReader(), req(line=b"PURGE /cache HTTP/1.1"))[0]
    assert isinstance(head, RequestHead)
    assert head.method == b"PURGE"


@pytest.mark.parametrize(
    ("value", "expected"), [(b"100-continue", True), (b"100-Continue", True), (b"other", False)]
)
def test_expect_continue(value: bytes, expected: bool) -> None:
    data = req(b"Expect: " + value + b"\r\nContent-Length: 3\r\n")
    events = feed_all(RequestReader(), data)
    assert len(events) == 1  # the body has not come yet
    head = events[0]
    assert isinstance(head, RequestHead)
    assert head.expect_continue is expected


def test_large_request_body_is_not_limited() -> None:
    body = b"x" * (1 << 20)
    reader = RequestReader(max_head_bytes=1024)
    events = merge_bodies(feed_all(reader, req(b"Content-Length: %d\r\n" % len(body), body)))
    assert events[1:] == [Body(body), END_OF_MESSAGE]


# -- pipelining and slicing --------------------------------------------------------------

PIPELINE = (
    req(line=b"GET /one HTTP/1.1")
    + req(b"Content-Length: 5\r\n", b"hello", line=b"POST /two HTTP/1.1")
    + req(CHUNKED, b"3;ext=1\r\nabc\r\n1A\r\n" + b"z" * 26 + b"\r\n0\r\n\r\n", b"PUT /3 HTTP/1.1")
    + req(line=b"DELETE /four HTTP/1.1")
)


def summarise(events: list[Event]) -> list[object]:
    out: list[object] = []
    for event in merge_bodies(events):
        if isinstance(event, RequestHead):
            out.append((event.method, event.target))
        elif isinstance(event, Body):
            out.append(event.data)
        else:
            out.append(event)
    return out


EXPECTED_PIPELINE = [
    (b"GET", b"/one"),
    END_OF_MESSAGE,
    (b"POST", b"/two"),
    b"hello",
    END_OF_MESSAGE,
    (b"PUT", b"/3"),
    b"abc" + b"z" * 26,
    END_OF_MESSAGE,
    (b"DELETE", b"/four"),
    END_OF_MESSAGE,
]


def test_pipelined_requests_in_one_feed() -> None:
    assert summarise(feed_all(RequestReader(), PIPELINE)) == EXPECTED_PIPELINE


def test_pipelined_requests_one_byte_at_a_time() -> None:
    assert summarise(feed_bytewise(RequestReader(), PIPELINE)) == EXPECTED_PIPELINE


def test_pipelined_requests_split_at_every_offset() -> None:
    for cut in range(len(PIPELINE) + 1):
        reader = RequestReader()
        events = feed_all(reader, PIPELINE[:cut]) + feed_all(reader, PIPELINE[cut:])
        assert summarise(events) == EXPECTED_PIPELINE, cut


def test_chunked_request_body_bytewise_with_trailers() -> None:
    body = b"4\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-Sum: 1\r\nX-T: 2\r\n\r\n"
    events = feed_bytewise(RequestReader(), req(CHUNKED, body))
    head = events[0]
    assert isinstance(head, RequestHead)
    assert head.chunked is True
    assert merge_bodies(events[1:]) == [Body(b"Wikipedia in\r\n\r\nchunks."), END_OF_MESSAGE]
    # trailers are dropped, never appended to the delivered head
    assert [name for name, _ in head.headers] == [b"Host", b"Transfer-Encoding"]


def test_zero_padded_chunk_size_is_read_by_value() -> None:
    events = feed_all(RequestReader(), req(CHUNKED, b"0005\r\nhello\r\n000\r\n\r\n"))
    assert events[1:] == [Body(b"hello"), END_OF_MESSAGE]


def test_leading_blank_lines_between_requests_are_skipped() -> None:
    events = feed_all(RequestReader(), req() + b"\r\n\r\n" + req())
    assert [type(e) for e in events] == [RequestHead, type(END_OF_MESSAGE)] * 2


# -- keep-alive ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "keep_alive"),
    [
        (b"GET / HTTP/1.0\r\n\r\n", False),
        (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", True),
        (b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", True),
        (req(), True),
        (req(b"Connection: close\r\n"), False),
        (req(b"Connection: CLOSE\r\n"), False),
        (req(b"Connection: foo, close\r\n"), False),
        (req(b"Connection: keep-alive\r\n"), True),
    ],
)
def test_request_keep_alive(data: bytes, keep_alive: bool) -> None:
    head = feed_all(RequestReader(), data)[0]
    assert isinstance(head, RequestHead)
    assert head.keep_alive is keep_alive


@pytest.mark.parametrize(
    "last", [b"GET / HTTP/1.0\r\n\r\n", req(b"Connection: close\r\n")], ids=["http10", "close"]
)
def test_bytes_after_a_last_request_are_ignored(last: bytes) -> None:
    reader = RequestReader()
    events = feed_all(reader, last + b"GET /more HTTP/1.1\r\nHost: a\r\n\r\n")
    assert len(events) == 2
    assert isinstance(events[0], RequestHead)
    assert events[0].keep_alive is False
    assert feed_all(reader, b"garbage \x00\x01") == []


def test_keep_alive_then_second_request_http10() -> None:
    data = b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /b HTTP/1.0\r\n\r\n"
    events = feed_all(RequestReader(), data)
    heads = [e for e in events if isinstance(e, RequestHead)]
    assert [(h.target, h.keep_alive) for h in heads] == [(b"/a", True), (b"/b", False)]


# -- upgrades ----------------------------------------------------------------------------

WEBSOCKET = req(
    b"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
)


def test_upgrade_request_with_trailing_tunnel_bytes() -> None:
    reader = RequestReader()
    events = feed_all(reader, WEBSOCKET + b"\x81\x05hello")
    head = events[0]
    assert isinstance(head, RequestHead)
    assert head.upgrade is True
    assert head.get(b"upgrade") == b"websocket"
    assert events[1:] == [END_OF_MESSAGE, Upgraded(b"\x81\x05hello")]
    # the tunnel is never parsed: even bytes that look like a request pass through
    assert feed_all(reader, b"GET / HTTP/1.1\r\n\r\n") == [Upgraded(b"GET / HTTP/1.1\r\n\r\n")]


def test_upgrade_request_without_tunnel_bytes() -> None:
    events = feed_all(RequestReader(), WEBSOCKET)
    assert events[1:] == [END_OF_MESSAGE, Upgraded(b"")]


def test_upgrade_request_bytewise() -> None:
    events = feed_bytewise(RequestReader(), WEBSOCKET + b"ab")
    assert isinstance(events[0], RequestHead)
    assert events[1:] == [END_OF_MESSAGE, Upgraded(b""), Upgraded(b"a"), Upgraded(b"b")]


def test_upgrade_request_with_content_length_body() -> None:
    head_bytes = req(b"Connection: upgrade\r\nUpgrade: h2c\r\nContent-Length: 5\r\n")
    reader = RequestReader()
    events = feed_all(reader, head_bytes + b"he")
    assert isinstance(events[0], RequestHead)
    assert events[0].upgrade is True
    assert events[1:] == [Body(b"he")]
    assert feed_all(reader, b"llo") == [Body(b"llo"), END_OF_MESSAGE, Upgraded(b"")]
    assert feed_all(reader, b"PRI") == [Upgraded(b"PRI")]
    reader = RequestReader()
    events = feed_all(reader, head_bytes + b"helloTUNNEL")
    assert events[1:] == [Body(b"hello"), END_OF_MESSAGE, Upgraded(b"TUNNEL")]


def test_connection_upgrade_without_upgrade_header_is_plain() -> None:
    events = feed_all(RequestReader(), req(b"Connection: upgrade\r\n") + req())
    assert [type(e) for e in events] == [RequestHead, type(END_OF_MESSAGE)] * 2
    assert isinstance(events[0], RequestHead)
    assert events[0].upgrade is False


# -- limits ------------------------------------------------------------------------------


def test_head_at_the_limit_passes_and_over_it_is_431() -> None:
    filler = b"X-Fill: " + b"a" * 900 + b"\r\n"
    ok = req(filler)
    assert isinstance(feed_all(RequestReader(max_head_bytes=1000), ok)[0], RequestHead)
    assert refusal(RequestReader(max_head_bytes=1000), req(filler + filler)) == 431
    assert refusal(RequestReader(max_head_bytes=1000), req(filler + filler), bytewise=True) == 431


def test_long_target_is_431() -> None:
    line = b"GET /" + b"a" * 2000 + b" HTTP/1.1"
    assert refusal(RequestReader(max_head_bytes=1000), req(line=line)) == 431
    assert refusal(RequestReader(max_head_bytes=1000), req(line=line), bytewise=True) == 431


def test_too_many_headers_is_431() -> None:
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(10))
    assert isinstance(feed_all(RequestReader(max_headers=11), req(many))[0], RequestHead)
    assert refusal(RequestReader(max_headers=10), req(many)) == 431


def test_too_many_trailers_is_431() -> None:
    trailers = b"".join(b"X-T%d: v\r\n" % i for i in range(12))
    data = req(CHUNKED, b"0\r\n" + trailers + b"\r\n")
    assert refusal(RequestReader(max_headers=10), data) == 431
    events = feed_all(RequestReader(max_headers=12), data)
    assert events[1:] == [END_OF_MESSAGE]


def test_endless_header_value_is_refused_while_it_streams() -> None:
    # The value never ends: the refusal must come once about max_head_bytes have been fed,
    # not after the whole value was buffered.
    reader = RequestReader(max_head_bytes=4096)
    reader.feed(b"GET / HTTP/1.1\r\nHost: a\r\nX-Endless: ")
    fed = 0
    with pytest.raises(HttpError) as info:
        while fed < 100_000:
            reader.feed(b"v" * 512)
            fed += 512
    assert info.value.status == 431
    assert fed <= 4096 + 512


def test_endless_trailer_is_refused() -> None:
    reader = RequestReader(max_head_bytes=4096)
    reader.feed(req(CHUNKED, b"0\r\nX-Trailer: "))
    with pytest.raises(HttpError) as info:
        for _ in range(100):
            reader.feed(b"v" * 512)
            reader.feed(b"v\r\nX-More: ")
    assert info.value.status == 431


def refusal_text(reader: Reader, *chunks: bytes) -> str:
    with pytest.raises(HttpError) as info:
        for chunk in chunks:
            reader.feed(chunk)
    return str(info.value)


def test_head_limits_say_which_limit() -> None:
    filler = b"X-Fill: " + b"a" * 900 + b"\r\n"
    big = req(filler + filler)
    assert refusal_text(RequestReader(max_head_bytes=1000), big) == "431 request head too large"
    many = req(b"".join(b"X-H%d: v\r\n" % i for i in range(10)))
    assert refusal_text(RequestReader(max_headers=10), many) == "431 too many request headers"
    # both limits broken: the size was seen first, as the head arrived
    both = RequestReader(max_head_bytes=1000, max_headers=1)
    assert refusal_text(both, big) == "431 request head too large"
    # a bad Content-Length before the size limit is crossed is what the refusal names
    bad_cl = req(b"Content-Length: 1\r\nContent-Length: 2\r\n" + filler + filler)
    assert refusal_text(RequestReader(max_head_bytes=1000), bad_cl).startswith("400 ")


def test_head_of_many_short_headers_in_many_chunks_is_refused_while_it_streams() -> None:
    # Every chunk ends some headers, the head never ends: the size limit must still hold
    # while it arrives, not only once the head is complete.
    reader = RequestReader(max_head_bytes=4096, max_headers=100_000)
    reader.feed(b"GET / HTTP/1.1\r\nHost: a\r\n")
    chunk = b"X-A: b\r\n" * 20
    fed = 0
    with pytest.raises(HttpError) as info:
        while fed < 100_000:
            reader.feed(chunk)
            fed += len(chunk)
    assert str(info.value) == "431 request head too large"
    assert fed <= 4096 + len(chunk)


def test_response_head_in_many_chunks_is_refused_while_it_streams() -> None:
    reader = ResponseReader(max_head_bytes=4096, max_headers=100_000)
    reader.expect(b"GET")
    reader.feed(b"HTTP/1.1 200 OK\r\n")
    chunk = b"X-A: b\r\n" * 20
    fed = 0
    with pytest.raises(HttpError) as info:
        while fed < 100_000:
            reader.feed(chunk)
            fed += len(chunk)
    assert str(info.value) == "502 response head too large"
    assert fed <= 4096 + len(chunk)


def test_long_reason_phrase_is_502() -> None:
    reader = ResponseReader(max_head_bytes=1000)
    reader.expect(b"GET")
    text = refusal_text(reader, b"HTTP/1.1 200 " + b"O" * 2000 + b"\r\n\r\n")
    assert text == "502 response head too large"


def test_trailers_count_toward_the_head_size() -> None:
    filler = b"X-Fill: " + b"a" * 600 + b"\r\n"
    data = req(filler + CHUNKED, b"0\r\n" + filler + b"\r\n")
    assert feed_all(RequestReader(max_head_bytes=2000), data)[1:] == [END_OF_MESSAGE]
    text = refusal_text(RequestReader(max_head_bytes=1000), data)
    assert text == "431 request head too large"
    # in pieces too: the head's size is carried over to the trailers
    reader = RequestReader(max_head_bytes=1000)
    head = req(filler + CHUNKED, b"0\r\n")
    text = refusal_text(reader, head, filler[:300], filler[300:], b"\r\n")
    assert text == "431 request head too large"


def test_trailers_are_not_interpreted() -> None:
    # A second Host or an Expect in the trailers would be refused or acted on in a head.
    chunked_body = b"0\r\nHost: other\r\nExpect: 100-continue\r\n\r\n"
    events = feed_all(RequestReader(), req(CHUNKED, chunked_body) + req())
    assert [type(event) for event in events] == [
        RequestHead,
        EndOfMessage,
        RequestHead,
        EndOfMessage,
    ]
    head = events[0]
    assert isinstance(head, RequestHead)
    assert head.get_all(b"host") == [b"example.test"]
    assert head.expect_continue is False
    reader = ResponseReader()
    reader.expect(b"GET")
    events = feed_all(reader, resp(CHUNKED, chunked_body))
    assert events[1:] == [END_OF_MESSAGE]


def test_watched_headers_are_found_in_any_case() -> None:
    data = req(
        b"cOnTeNt-LeNgTh: 2\r\nCONNECTION: Keep-Alive\r\nexpect: 100-Continue\r\n"
        b"Connection: x-a\r\n",
        b"ok",
    )
    head = feed_all(RequestReader(), data)[0]
    assert isinstance(head, RequestHead)
    assert head.content_length == 2
    assert head.expect_continue is True
    assert head.connection == [b"Keep-Alive", b"x-a"]
    assert head.get(b"connection") == b"Keep-Alive"
    assert head.get_all(b"connection") == [b"Keep-Alive", b"x-a"]
    assert head.get(b"content-type") is None
    assert head.get_all(b"content-type") == []
    two_hosts = req(b"HOST: b\r\n")
    assert refusal_text(RequestReader(), two_hosts) == "400 more than one Host header"
    no_host = b"GET / HTTP/1.1\r\nX-A: b\r\n\r\n"
    assert refusal_text(RequestReader(), no_host) == "400 missing Host header"
    upper_te = feed_all(RequestReader(), req(b"transfer-ENCODING: CHUNKED\r\n", b"0\r\n\r\n"))
    assert isinstance(upper_te[0], RequestHead)
    assert upper_te[0].chunked is True


def test_request_feed_eof() -> None:
    reader = RequestReader()
    reader.feed(req(b"Content-Length: 10\r\n", b"abc"))
    with pytest.raises(HttpError) as info:
        reader.feed_eof()
    assert info.value.status == 400
    idle = RequestReader()
    feed_all(idle, req())
    idle.feed_eof()  # between requests: a normal close
    assert idle.next_event() is None


# -- responses -----------------------------------------------------------------------------


def resp(headers: bytes = b"", body: bytes = b"", line: bytes = b"HTTP/1.1 200 OK") -> bytes:
    return line + b"\r\n" + headers + b"\r\n" + body


RESPONSE_REFUSALS = [
    ("cl-and-te", resp(b"Content-Length: 3\r\n" + CHUNKED, b"0\r\n\r\n")),
    ("te-and-cl", resp(CHUNKED + b"Content-Length: 3\r\n", b"0\r\n\r\n")),
    ("cl-duplicate", resp(b"Content-Length: 3\r\nContent-Length: 3\r\n", b"abc")),
    ("cl-list", resp(b"Content-Length: 3, 3\r\n", b"abc")),
    ("cl-not-digits", resp(b"Content-Length: +3\r\n", b"abc")),
    ("te-gzip", resp(b"Transfer-Encoding: gzip\r\n", b"abc")),
    ("te-gzip-chunked", resp(b"Transfer-Encoding: gzip, chunked\r\n", b"0\r\n\r\n")),
    ("te-duplicate", resp(CHUNKED + CHUNKED, b"0\r\n\r\n")),
    ("te-on-http10", resp(CHUNKED, b"0\r\n\r\n", line=b"HTTP/1.0 200 OK")),
    ("obs-fold", resp(b"X-A: one\r\n two\r\n")),
    ("space-before-colon", resp(b"X-A : one\r\n")),
    ("value-nul", resp(b"X-A: o\x00ne\r\n")),
    ("bare-lf", b"HTTP/1.1 200 OK\nContent-Length: 0\n\n"),
    ("status-two-digits", resp(line=b"HTTP/1.1 99 Odd")),
    ("status-099", resp(line=b"HTTP/1.1 099 Odd")),
    ("status-600", resp(line=b"HTTP/1.1 600 Odd")),
    ("status-four-digits", resp(line=b"HTTP/1.1 2000 OK")),
    ("version-2.0", resp(b"Content-Length: 0\r\n", line=b"HTTP/2.0 200 OK")),
    ("not-http", b"SSH-2.0-OpenSSH_9.6\r\n"),
    ("101-without-upgrade", resp(line=b"HTTP/1.1 101 Switching Protocols")),
    ("chunk-size-not-hex", resp(CHUNKED, b"zz\r\nabc\r\n0\r\n\r\n")),
    ("chunk-size-overflow", resp(CHUNKED, b"fffffffffffffffff\r\nabc\r\n0\r\n\r\n")),
    ("chunk-data-no-crlf", resp(CHUNKED, b"3\r\nabcd\r\n0\r\n\r\n")),
]


@pytest.mark.parametrize("data", [pytest.param(d, id=i) for i, d in RESPONSE_REFUSALS])
def test_response_refusals_are_502(data: bytes) -> None:
    assert refusal(ResponseReader(), data) == 502
    assert refusal(ResponseReader(), data, bytewise=True) == 502


@pytest.mark.parametrize("data", [pytest.param(d, id=i) for i, d in RESPONSE_REFUSALS])
def test_response_refusals_when_answering_head(data: bytes) -> None:
    reader = ResponseReader()
    reader.expect(b"HEAD")
    with pytest.raises(HttpError) as info:
        reader.feed(data)
    assert info.value.status == 502
    # HEAD answers have no body: body-only faults may go unseen, but never the head's
    assert reader.next_event() is None


def test_response_head_limits_are_502() -> None:
    big = resp(b"X-Fill: " + b"a" * 2000 + b"\r\n")
    assert refusal(ResponseReader(max_head_bytes=1000), big) == 502
    many = resp(b"".join(b"X-H%d: v\r\n" % i for i in range(20)))
    assert refusal(ResponseReader(max_headers=10), many) == 502
    answering_head = ResponseReader(max_head_bytes=1000)
    answering_head.expect(b"HEAD")
    answering_head.feed(big[:100])  # the chunk a head starts in is bounded by the read size
    assert refusal(answering_head, big[100:1900]) == 502


def test_response_with_content_length() -> None:
    reader = ResponseReader()
    reader.expect(b"GET")
    data = resp(
        b"Content-Type: text/plain\r\nContent-Length: 5\r\n", b"hello", b"HTTP/1.1 200 Fine"
    )
    events = feed_all(reader, data)
    head = events[0]
    assert isinstance(head, ResponseHead)
    assert (head.status, head.reason, head.version) == (200, b"Fine", b"1.1")
    assert head.get(b"content-type") == b"text/plain"
    assert (head.keep_alive, head.chunked, head.content_length) == (True, False, 5)
    assert events[1:] == [Body(b"hello"), END_OF_MESSAGE]
    reader.feed_eof()  # a keep-alive connection closed after a complete response
    assert reader.next_event() is None


def test_body_taken_outside_ends_the_response_and_the_next_one_reads_afresh() -> None:
    reader = ResponseReader()
    reader.expect(b"GET")
    events = feed_all(reader, resp(b"Content-Length: 10\r\n", b"hel"))
    assert isinstance(events[0], ResponseHead)
    assert events[1:] == [Body(b"hel")]
    assert reader.body_left() == 7
    assert reader.take_body_outside() == 7  # the 7 bytes went by another way
    assert reader.between_messages()
    assert reader.body_left() == 0
    reader.expect(b"GET")
    events = feed_all(reader, resp(b"Content-Length: 2\r\n", b"ok"))
    assert isinstance(events[0], ResponseHead)
    assert events[1:] == [Body(b"ok"), END_OF_MESSAGE]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (resp(b"Content-Length: 5\r\n", b"hello"), 0),  # complete
        (resp(CHUNKED, b"5\r\nhel"), 0),  # chunked: its length is not known
        (resp(b"Content-Type: text/html\r\n", b"<html>"), 0),  # read until close
        (b"HTTP/1.1 200 OK\r\nContent-Le", 0),  # still in the head
    ],
    ids=["complete", "chunked", "until-close", "in-head"],
)
def test_no_body_to_take_outside(data: bytes, expected: int) -> None:
    reader = ResponseReader()
    reader.expect(b"GET")
    feed_all(reader, data)
    assert reader.body_left() == expected
    with pytest.raises(ValueError):
        reader.take_body_outside()


def test_body_left_waits_for_queued_events() -> None:
    reader = ResponseReader()
    reader.expect(b"GET")
    reader.feed(resp(b"Content-Length: 10\r\n", b"hel"))
    assert reader.body_left() == 0  # the head and the first bytes are not taken yet
    drain(reader)
    assert reader.body_left() == 7


def test_last_response_taken_outside_ignores_what_follows() -> None:
    reader = ResponseReader()
    reader.expect(b"GET")
    feed_all(reader, resp(b"Content-Length: 10\r\nConnection: close\r\n", b"hel"))
    assert reader.take_body_outside() == 7
    assert feed_all(reader, b"junk after the last response") == []


def test_response_without_reason() -> None:
    head = feed_all(ResponseReader(), resp(b"Content-Length: 0\r\n", line=b"HTTP/1.1 204"))[0]
    assert isinstance(head, ResponseHead)
    assert (head.status, head.reason) == (204, b"")


def test_chunked_response_bytewise() -> None:
    body = b"5\r\nhello\r\n1;name=value\r\n \r\n6\r\nworld!\r\n0\r\nX-Checksum: abc\r\n\r\n"
    reader = ResponseReader()
    reader.expect(b"GET")
    events = feed_bytewise(reader, resp(CHUNKED, body) + resp(b"Content-Length: 1\r\n", b"Z"))
    head = events[0]
    assert isinstance(head, ResponseHead)
    assert head.chunked is True
    assert head.content_length is None
    assert head.headers == [(b"Transfer-Encoding", b"chunked")]
    merged = merge_bodies(events)
    assert merged[1:3] == [Body(b"hello world!"), END_OF_MESSAGE]
    assert isinstance(merged[3], ResponseHead)
    assert merged[4:] == [Body(b"Z"), END_OF_MESSAGE]


def test_read_until_close_response() -> None:
    reader = ResponseReader()
    reader.expect(b"GET")
    events = feed_all(reader, resp(b"Content-Type: text/html\r\n", b"<html>"))
    head = events[0]
    assert isinstance(head, ResponseHead)
    assert head.keep_alive is False
    assert head.content_length is None
    assert events[1:] == [Body(b"<html>")]
    assert feed_all(reader, b"</html>") == [Body(b"</html>")]
    reader.feed_eof()
    assert drain(reader) == [END_OF_MESSAGE]
    reader.feed_eof()  # a second close changes nothing
    assert reader.next_event() is None


def test_read_until_close_http10() -> None:
    reader = ResponseReader()
    events = feed_all(reader, resp(b"Server: old\r\n", b"data", b"HTTP/1.0 200 OK"))
    assert isinstance(events[0], ResponseHead)
    assert events[0].version == b"1.0"
    reader.feed_eof()
    assert drain(reader) == [END_OF_MESSAGE]


@pytest.mark.parametrize(
    "partial",
    [
        b"HTTP/1.1 200 OK\r\nContent-Le",
        resp(b"Content-Length: 10\r\n", b"short"),
        resp(CHUNKED, b"5\r\nhel"),
        resp(CHUNKED, b"5\r\nhello\r\n"),
    ],
    ids=["in-head", "short-content-length", "in-chunk", "before-last-chunk"],
)
def test_feed_eof_refuses_cut_responses(partial: bytes) -> None:
    reader = ResponseReader()
    reader.expect(b"GET")
    reader.feed(partial)
    with pytest.raises(HttpError) as info:
        reader.feed_eof()
    assert info.value.status == 502


def test_feed_eof_without_any_response() -> None:
    reader = ResponseReader()
    reader.expect(b"GET")
    with pytest.raises(HttpError) as info:
        reader.feed_eof()
    assert info.value.status == 502
    ResponseReader().feed_eof()  # nothing was asked: an idle close is no error


def test_feed_eof_while_answering_head_mid_head() -> None:
    reader = ResponseReader()
    reader.expect(b"HEAD")
    reader.feed(b"HTTP/1.1 200 OK\r\nContent-Len")
    with pytest.raises(HttpError) as info:
        reader.feed_eof()
    assert info.value.status == 502


@pytest.mark.parametrize("status", [204, 304])
def test_no_body_statuses_ignore_content_length(status: int) -> None:
    reader = ResponseReader()
    line = b"HTTP/1.1 %d X" % status
    events = feed_all(
        reader, resp(b"Content-Length: 10\r\n", line=line) + resp(b"Content-Length: 2\r\n", b"ok")
    )
    assert isinstance(events[0], ResponseHead)
    assert events[0].status == status
    assert events[0].keep_alive is True
    assert events[1] is END_OF_MESSAGE
    assert isinstance(events[2], ResponseHead)
    assert events[3:] == [Body(b"ok"), END_OF_MESSAGE]


HEAD_FOLLOWUP = resp(b"Content-Length: 3\r\n", b"abc", b"HTTP/1.1 201 Created")


@pytest.mark.parametrize(
    "framing",
    [b"Content-Length: 1234\r\n", CHUNKED, b"", b"Content-Length: 0\r\n"],
    ids=["content-length", "chunked", "unframed", "zero-length"],
)
@pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "bytewise"])
def test_head_response_has_no_body(framing: bytes, bytewise: bool) -> None:
    reader = ResponseReader()
    reader.expect(b"HEAD")
    feed = feed_bytewise if bytewise else feed_all
    events = feed(reader, resp(framing + b'ETag: "v1"\r\n'))
    head = events[0]
    assert isinstance(head, ResponseHead)
    assert head.status == 200
    assert head.keep_alive is True
    assert head.get(b"etag") == b'"v1"'
    assert events[1:] == [END_OF_MESSAGE]
    # the next exchange on the same connection is read normally
    reader.expect(b"GET")
    events = feed(reader, HEAD_FOLLOWUP)
    assert isinstance(events[0], ResponseHead)
    assert events[0].status == 201
    assert merge_bodies(events[1:]) == [Body(b"abc"), END_OF_MESSAGE]


def test_head_response_and_next_response_in_one_feed() -> None:
    reader = ResponseReader()
    reader.expect(b"HEAD")
    events = feed_all(reader, resp(b"Content-Length: 50\r\n") + HEAD_FOLLOWUP)
    assert [type(e) for e in events] == [
        ResponseHead,
        type(END_OF_MESSAGE),
        ResponseHead,
        Body,
        type(END_OF_MESSAGE),
    ]
    assert events[3] == Body(b"abc")


def test_head_response_after_interim_response() -> None:
    reader = ResponseReader()
    reader.expect(b"HEAD")
    data = resp(b"Link: </s.css>; rel=preload\r\n", line=b"HTTP/1.1 103 Early Hints")
    data += resp(b"Content-Length: 99\r\n")
    for feed in (feed_all, feed_bytewise):
        reader.reset()
        reader.expect(b"HEAD")
        events = feed(reader, data)
        statuses = [e.status if isinstance(e, ResponseHead) else e for e in events]
        assert statuses == [103, END_OF_MESSAGE, 200, END_OF_MESSAGE]


@pytest.mark.parametrize(
    ("data", "keep_alive"),
    [
        (resp(b"Connection: close\r\nContent-Length: 9\r\n"), False),
        (resp(b"Connection: keep-alive\r\n", line=b"HTTP/1.0 200 OK"), True),
        (resp(b"Content-Length: 9\r\n", line=b"HTTP/1.0 200 OK"), False),
        (resp(), True),
    ],
)
def test_head_response_keep_alive(data: bytes, keep_alive: bool) -> None:
    reader = ResponseReader()
    reader.expect(b"HEAD")
    head = feed_all(reader, data)[0]
    assert isinstance(head, ResponseHead)
    assert head.keep_alive is keep_alive


def test_interim_responses_then_final() -> None:
    reader = ResponseReader()
    reader.expect(b"POST")
    data = (
        resp(line=b"HTTP/1.1 100 Continue")
        + resp(b"Link: </a.js>; rel=preload\r\n", line=b"HTTP/1.1 103 Early Hints")
        + resp(b"Content-Length: 4\r\n", b"done")
    )
    for feed in (feed_all, feed_bytewise):
        reader.reset()
        events = merge_bodies(feed(reader, data))
        assert [e.status for e in events if isinstance(e, ResponseHead)] == [100, 103, 200]
        assert [type(e).__name__ for e in events] == [
            "ResponseHead",
            "EndOfMessage",
            "ResponseHead",
            "EndOfMessage",
            "ResponseHead",
            "Body",
            "EndOfMessage",
        ]
        early = events[2]
        assert isinstance(early, ResponseHead)
        assert early.reason == b"Early Hints"
        assert early.get(b"link") == b"</a.js>; rel=preload"
        assert events[5] == Body(b"done")


def test_interim_response_does_not_end_the_wait() -> None:
    reader = ResponseReader()
    reader.expect(b"POST")
    feed_all(reader, resp(line=b"HTTP/1.1 100 Continue"))
    with pytest.raises(HttpError) as info:
        reader.feed_eof()
    assert info.value.status == 502


SWITCH = resp(
    b"Connection: Upgrade\r\nUpgrade: websocket\r\n", line=b"HTTP/1.1 101 Switching Protocols"
)


@pytest.mark.parametrize("method", [b"GET", b"HEAD"])
def test_101_response_with_trailing_bytes(method: bytes) -> None:
    reader = ResponseReader()
    reader.expect(method)
    events = feed_all(reader, SWITCH + b"\x81\x02hi")
    head = events[0]
    assert isinstance(head, ResponseHead)
    assert head.status == 101
    assert events[1:] == [END_OF_MESSAGE, Upgraded(b"\x81\x02hi")]
    assert feed_all(reader, b"HTTP/1.1 200 OK\r\n\r\n") == [Upgraded(b"HTTP/1.1 200 OK\r\n\r\n")]
    reader.feed_eof()  # the tunnel closing is no error
    assert reader.next_event() is None


def test_101_response_bytewise() -> None:
    reader = ResponseReader()
    reader.expect(b"GET")
    events = feed_bytewise(reader, SWITCH + b"xy")
    assert isinstance(events[0], ResponseHead)
    assert events[1:] == [END_OF_MESSAGE, Upgraded(b""), Upgraded(b"x"), Upgraded(b"y")]


@pytest.mark.parametrize(
    ("data", "keep_alive"),
    [
        (resp(b"Content-Length: 0\r\n"), True),
        (resp(b"Content-Length: 0\r\nConnection: close\r\n"), False),
        (resp(b"Content-Length: 0\r\n", line=b"HTTP/1.0 200 OK"), False),
        (resp(b"Content-Length: 0\r\nConnection: keep-alive\r\n", line=b"HTTP/1.0 200 OK"), True),
        (resp(CHUNKED, b"0\r\n\r\n"), True),
        (resp(b"X: y\r\n"), False),  # read until close
    ],
)
def test_response_keep_alive(data: bytes, keep_alive: bool) -> None:
    head = feed_all(ResponseReader(), data)[0]
    assert isinstance(head, ResponseHead)
    assert head.keep_alive is keep_alive


def test_bytes_after_a_closing_response_are_ignored() -> None:
    reader = ResponseReader()
    events = feed_all(reader, resp(b"Content-Length: 2\r\nConnection: close\r\n", b"okJUNK"))
    assert events[1:] == [Body(b"ok"), END_OF_MESSAGE]
    assert feed_all(reader, b"more junk") == []


def test_response_trailers_are_dropped() -> None:
    reader = ResponseReader()
    events = feed_all(reader, resp(CHUNKED, b"2\r\nok\r\n0\r\nX-Checksum: 7\r\n\r\n"))
    head = events[0]
    assert isinstance(head, ResponseHead)
    assert head.content_length is None
    assert head.headers == [(b"Transfer-Encoding", b"chunked")]
    assert events[1:] == [Body(b"ok"), END_OF_MESSAGE]


def test_response_reader_reset_after_error() -> None:
    reader = ResponseReader()
    with pytest.raises(HttpError):
        reader.feed(b"garbage\r\n\r\n")
    with pytest.raises(HttpError):
        reader.feed_eof()
    reader.reset()
    events = feed_all(reader, resp(b"Content-Length: 0\r\n"))
    assert isinstance(events[0], ResponseHead)
    assert events[1:] == [END_OF_MESSAGE]


def test_idle_keep_alive_reader_holds_no_parser_and_reads_the_next_request() -> None:
    reader = RequestReader()
    for path in (b"/one", b"/two"):
        reader.feed(b"GET " + path + b" HTTP/1.1\r\nHost: a\r\n\r\n")
        head = reader.next_event()
        assert isinstance(head, RequestHead) and head.target == path
        assert reader.next_event() is END_OF_MESSAGE
        assert reader._parser is None  # dropped between requests, made again by the next
    reader.feed(b"GET /three HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /x HTTP/1.1\r\n")
    assert reader.next_event().target == b"/three"
    assert reader.next_event() is END_OF_MESSAGE
    assert reader.next_event() is None  # bytes after the last request stay ignored


def test_pipelined_requests_keep_the_parser_until_the_last_is_read() -> None:
    reader = RequestReader()
    reader.feed(b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n")
    assert reader.next_event().target == b"/a"
    assert reader.next_event() is END_OF_MESSAGE
    assert reader.next_event().target == b"/b"
    assert reader.next_event() is END_OF_MESSAGE
    reader.feed(b"GET /c HTTP/1.1\r\nHost: a\r\n\r\n")
    assert reader.next_event().target == b"/c"


def test_idle_reader_reads_headers_and_connection_options_of_the_next_request() -> None:
    reader = RequestReader()
    reader.feed(b"GET /a HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n")
    first = reader.next_event()
    assert reader.next_event() is END_OF_MESSAGE
    reader.feed(b"GET /b HTTP/1.1\r\nHost: b\r\nConnection: x-opt\r\nX-A: 1\r\n\r\n")
    second = reader.next_event()
    assert first.headers == [(b"Host", b"a"), (b"Connection", b"keep-alive")]
    assert second.headers == [(b"Host", b"b"), (b"Connection", b"x-opt"), (b"X-A", b"1")]
    assert second.connection == [b"x-opt"]


def test_a_request_reader_is_at_rest_only_between_requests_with_nothing_held():
    reader = RequestReader()
    assert reader.at_rest()
    reader.feed(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHo")
    assert not reader.at_rest()
    assert isinstance(reader.next_event(), RequestHead)
    assert reader.next_event() is not None  # the end of /a
    assert not reader.at_rest()  # /b has begun
    reader.feed(b"st: x\r\n\r\n")
    assert reader.next_event().target == b"/b"
    reader.next_event()
    assert reader.at_rest()
    reader.feed(b"GET /c HTTP/1.1\r\nConnection: close\r\nHost: x\r\n\r\n")
    reader.next_event()
    reader.next_event()
    assert not reader.at_rest()  # no request may follow a "close"


class _LlhttpVersions:
    """What llhttp itself reads as each message's version (the reader's fallback)."""

    def __init__(self, parser_type: type) -> None:
        self.versions: list[str] = []
        self.parser = parser_type(self)

    def on_headers_complete(self) -> None:
        self.versions.append(self.parser.get_http_version())


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.0\r\nHost: a\r\n\r\n",
        b"\r\nGET / HTTP/1.0\r\nHost: a\r\n\r\n",  # a stray line ending first
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.0\r\nHost: a\r\n\r\n",  # pipelined
        b"GET / HTTP/1.0\nHost: a HTTP/1.1\r\n\r\n",  # a bare LF ends the request line
        b"GET /a?b=HTTP/1.0 HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\rHost: a HTTP/1.0\r\n\r\n",
    ],
)
def test_a_request_version_read_from_the_bytes_is_the_one_llhttp_reads(data: bytes) -> None:
    expected = _LlhttpVersions(httptools.HttpRequestParser)
    try:
        expected.parser.feed_data(data)
    except httptools.HttpParserError:
        with pytest.raises(HttpError):
            RequestReader().feed(data)
        return
    heads = [e for e in feed_all(RequestReader(), data) if isinstance(e, RequestHead)]
    assert [head.version.decode() for head in heads] == expected.versions


@pytest.mark.parametrize(
    "data",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
    ],
)
def test_a_response_version_read_from_the_bytes_is_the_one_llhttp_reads(data: bytes) -> None:
    expected = _LlhttpVersions(httptools.HttpResponseParser)
    expected.parser.feed_data(data)
    reader = ResponseReader()
    reader.expect(b"GET")
    heads = [e for e in feed_all(reader, data) if isinstance(e, ResponseHead)]
    assert [head.version.decode() for head in heads] == expected.versions[-len(heads) :]
