"""Plain heads are read without llhttp exactly as llhttp reads them, or left to it.

Each generated input is fed to a reader that reads plain heads itself and to one that leaves
every head to llhttp; the events, and any refusal, must be the same. The pieces are the common
shapes plus the hostile and unusual ones a plain reading must decline.
"""

from __future__ import annotations

import random

import pytest

from passerelle.engine.http.codec import (
    HttpError,
    RequestHead,
    RequestReader,
    ResponseHead,
    ResponseReader,
)
from passerelle.engine.http.plain_head import (
    ASCII_LOWER,
    decimal,
    head_lines,
    head_size,
    header_pairs,
    request_line,
    status_code,
)

Reader = RequestReader | ResponseReader

METHODS = [b"GET"] * 6 + [
    b"HEAD",
    b"POST",
    b"PUT",
    b"DELETE",
    b"OPTIONS",
    b"PATCH",
    b"FOO",
    b"CONNECT",
    b"get",
    b"TRACE",
    b"PROPFIND",
]
TARGETS = [b"/"] * 6 + [
    b"/a/b?c=d&e=f",
    b"/x#frag",
    b"*",
    b"http://h/p",
    b"/%7E",
    b"/%zz",
    b'/a"b',
    b"/<x>",
    b"/{}",
    b"/a|b",
    b"/a\\b",
    b"/^",
    b"/`",
    b"/\x7f",
    b"/\xc3\xa9",
    b"/a\tb",
    b"",
    b"/;p=1",
    b"/[::1]",
    b"/@!$&'()*+,=~",
    b"//a",
]
SEPARATORS = [b" "] * 10 + [b"  ", b"\t", b""]
VERSIONS = [b"HTTP/1.1"] * 6 + [
    b"HTTP/1.0",
    b"HTTP/1.0",
    b"HTTP/1.2",
    b"HTTP/2.0",
    b"http/1.1",
    b"HTTP/1.10",
    b"HTTP/01.1",
    b"HTTP/1.1 ",
]
LINE_ENDS = [b"\r\n"] * 14 + [b"\n", b"\r", b"\r\r\n"]
HOSTS = [b"Host: a", b"Host:a", b"host:  a  ", b"HOST: a\t", b"Host: a b", b"Host:"]
LENGTHS = [
    b"0",
    b"2",
    b"2",
    b"5",
    b" 2 ",
    b"02",
    b"+2",
    b"-1",
    b"2,2",
    b"2, 2",
    b"",
    b"2 2",
    b"0x2",
    b"99999999999999999999",
    b"1234567890123456",
]
COMMON_HEADERS = [
    b"Accept: */*",
    b"User-Agent: curl/8.1",
    b"X-Empty:",
    b"X-Spaces:   ",
    b"X-Tab: a\tb",
    b"X-Obs: caf\xc3\xa9",
    b"X-Ctl: a\x01b",
    b"X-Del: a\x7fb",
    b"X-Nul: a\x00",
    b"X Sp: y",
    b"X-Colon : y",
    b" folded",
    b"\tfolded",
    b":novalue",
    b'X-Quote": y',
    b"X-Many: a:b:c",
    b"Connection: close",
    b"Connection: keep-alive",
    b"Connection: Keep-Alive",
    b"connection: CLOSE",
    b"Connection: upgrade",
    b"Connection: close, keep-alive",
    b"Connection: keep-alive ",
    b"Connection:",
    b"Transfer-Encoding: chunked",
    b"Transfer-Encoding: gzip",
    b"Upgrade: websocket",
    b"Proxy-Connection: close",
    b"Proxy-Connection: keep-alive",
    b"Expect: 100-continue",
    b"Expect: 100-Continue",
    b"Expect: nothing",
]
STATUS_LINES = [b"HTTP/1.1 200 OK"] * 8 + [
    b"HTTP/1.0 200 OK",
    b"HTTP/1.1 404 Not Found",
    b"HTTP/1.1 503 Service Unavailable",
    b"HTTP/1.1 204 No Content",
    b"HTTP/1.1 304 Not Modified",
    b"HTTP/1.1 100 Continue",
    b"HTTP/1.1 101 Switching Protocols",
    b"HTTP/1.1 200 ",
    b"HTTP/1.1 200",
    b"HTTP/1.1 999 X",
    b"HTTP/1.1 600 X",
    b"HTTP/1.1 099 X",
    b"HTTP/1.1 20 OK",
    b"HTTP/1.1 2000 OK",
    b"HTTP/1.2 200 OK",
    b"HTTP/1.1  200 OK",
    b"HTTP/1.1 200 O\tK",
    b"HTTP/1.1 200 OK ",
    b"HTTP/1.1 200 caf\xc3\xa9",
    b"http/1.1 200 OK",
    b"HTTP/1.1 2x0 OK",
]
RESPONSE_HEADERS = [
    b"Server: nginx/1.22.1",
    b"Date: Fri, 27 Nov 2026 16:07:54 GMT",
    b"Content-Type: text/plain",
] * 2 + COMMON_HEADERS
BODIES = [b"", b"ok", b"hello", b"x" * 40]


class Picker:
    """Choices for one generated message: the first (plain) option of each list, but for
    a share of the choices, that differs from message to message, any option."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.odd = rng.choice([0.0, 0.03, 0.1, 0.5])

    def __call__(self, options: list[bytes]) -> bytes:
        rng = self.rng
        return rng.choice(options) if rng.random() < self.odd else options[0]


def _headers(pick: Picker, common: list[bytes], body: bytes) -> list[bytes]:
    rng = pick.rng
    # The plain header for a header left plain: any of the first 3 (plain ones).
    headers = [
        pick(common) if rng.random() < 0.5 else rng.choice(common[:3])
        for _ in range(rng.randrange(0, 5))
    ]
    # Mostly the body's true length.
    lengths = [str(len(body)).encode(), *LENGTHS]
    if rng.random() < 0.8:
        headers.append(b"Content-Length: " + pick(lengths))
    if rng.random() < 0.05:
        headers.append(b"Content-Length: " + pick(lengths))
    rng.shuffle(headers)
    return headers


def _message(pick: Picker, first_line: bytes, headers: list[bytes], body: bytes) -> bytes:
    head = first_line + pick(LINE_ENDS) + b"".join(header + pick(LINE_ENDS) for header in headers)
    return head + pick(LINE_ENDS) + body


def generated_request(rng: random.Random) -> bytes:
    pick = Picker(rng)
    line = pick(METHODS) + pick(SEPARATORS) + pick(TARGETS) + pick(SEPARATORS) + pick(VERSIONS)
    body = pick(BODIES)
    headers = _headers(pick, COMMON_HEADERS, body)
    if rng.random() < 0.95:
        headers.insert(rng.randrange(len(headers) + 1), pick(HOSTS))
    if rng.random() < 0.05:
        headers.append(pick(HOSTS))
    return (b"\r\n" if rng.random() < 0.03 else b"") + _message(pick, line, headers, body)


def generated_response(rng: random.Random) -> bytes:
    pick = Picker(rng)
    body = rng.choice(BODIES)
    return _message(pick, pick(STATUS_LINES), _headers(pick, RESPONSE_HEADERS, body), body)


def reading(
    reader: Reader, chunks: list[bytes], methods: list[bytes]
) -> tuple[list[object], int | None, bool]:
    """Events and the refusal's status from feeding ``chunks``; whether llhttp began none."""
    if isinstance(reader, ResponseReader):
        for method in methods:
            reader.expect(method)
    events: list[object] = []
    status = None
    llhttp_began = False
    try:
        for chunk in chunks:
            reader.feed(chunk)
            llhttp_began |= reader._begun > 0  # set each time llhttp begins a message
            while (event := reader.next_event()) is not None:
                events.append(event)
    except HttpError as error:
        status = error.status
    return events, status, not llhttp_began


def compare(make: type[Reader], chunks: list[bytes], methods: list[bytes], limits: dict) -> bool:
    """Asserts both readings agree; returns whether the plain one did without llhttp."""
    plain = reading(make(**limits), chunks, methods)
    llhttp = reading(make(plain_heads=False, **limits), chunks, methods)
    assert plain[0] == llhttp[0], chunks
    # llhttp tells an unknown method (501) only at the start of the chunk it reads: a plain
    # request read before one moves that start.
    if (plain[1], llhttp[1]) != (501, 400):
        assert plain[1] == llhttp[1], chunks
    return plain[2] and bool(plain[0])


def _limits(rng: random.Random) -> dict:
    if rng.random() < 0.8:
        return {}
    return {"max_head_bytes": rng.randrange(20, 140), "max_headers": rng.randrange(0, 5)}


def _cases(generate, seed: int, count: int):  # type: ignore[no-untyped-def]
    rng = random.Random(seed)
    for _ in range(count):
        data = generate(rng)
        pipelined = rng.random() < 0.3
        if pipelined:
            data += generate(rng)
        chunks = [data]
        if rng.random() < 0.3 and len(data) > 1:
            cut = rng.randrange(1, len(data))
            chunks = [data[:cut], data[cut:]]
        methods = [rng.choice([b"GET", b"GET", b"HEAD", b"POST"]) for _ in range(2)]
        yield chunks, methods, _limits(rng)


@pytest.mark.parametrize("seed", range(4))
def test_generated_requests_read_alike(seed: int) -> None:
    plain = 0
    for chunks, methods, limits in _cases(generated_request, seed, 3000):
        plain += compare(RequestReader, chunks, methods, limits)
    assert plain > 150  # enough of them took the plain path for the comparison to mean much


@pytest.mark.parametrize("seed", range(4))
def test_generated_responses_read_alike(seed: int) -> None:
    plain = 0
    for chunks, methods, limits in _cases(generated_response, seed, 3000):
        plain += compare(ResponseReader, chunks, methods, limits)
    assert plain > 150


@pytest.mark.parametrize("generate", [generated_request, generated_response])
def test_the_ways_to_find_a_head_find_the_same_lines(generate) -> None:  # type: ignore[no-untyped-def]
    """A head that starts a chunk is split in one pass when the chunk ends with it, or by
    partition() when the chunk is small; any other by a search from where it starts."""
    plain = 0
    for chunks, _, limits in _cases(generate, 7, 3000):
        data = b"".join(chunks)
        most_bytes, most_headers = (
            limits.get("max_head_bytes", 65536),
            limits.get("max_headers", 100),
        )
        lines = head_lines(data, 0, most_bytes, most_headers)
        assert lines == head_lines(b"x" + data, 1, most_bytes, most_headers), data
        assert lines == head_lines(data + b"x" * 4096, 0, most_bytes, most_headers), data
        plain += bool(lines)
        if lines:  # each way must stop at the limits exactly where the others stop
            breaks = len(lines) - 1
            least_bytes = head_size(lines) + breaks  # a byte a line over: see head_lines
            for most_bytes, most_headers in (
                (least_bytes, breaks),
                (least_bytes - 1, breaks),
                (least_bytes, breaks - 1),
            ):
                lines = head_lines(data, 0, most_bytes, most_headers)
                assert lines == head_lines(b"x" + data, 1, most_bytes, most_headers), data
                assert lines == head_lines(data + b"x" * 4096, 0, most_bytes, most_headers)
                assert bool(lines) == (most_bytes == least_bytes and most_headers == breaks)
    assert plain > 1000


WRK_REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"
CURL_REQUEST = b"GET /a?b=c HTTP/1.1\r\nHost: a.test\r\nUser-Agent: curl/8.1\r\nAccept: */*\r\n\r\n"
NGINX_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Fri, 27 Nov 2026 16:07:54 GMT\r\n"
    b"Content-Type: text/plain\r\nContent-Length: 19\r\nConnection: keep-alive\r\n\r\n"
    b"hello from backend\n"
)


@pytest.mark.parametrize(
    ("make", "data"),
    [
        (RequestReader, WRK_REQUEST),
        (RequestReader, CURL_REQUEST * 3),
        (RequestReader, b"POST /f HTTP/1.0\r\nHost: a\r\nContent-Length: 2\r\n\r\nok"),
        (ResponseReader, NGINX_RESPONSE),
    ],
    ids=["wrk", "curl-pipelined", "post-http10", "nginx"],
)
def test_common_messages_are_read_plainly(make: type[Reader], data: bytes) -> None:
    assert compare(make, [data], [b"GET"], {})


def test_head_answers_and_chunked_bodies_are_left_to_llhttp() -> None:
    head_answer = NGINX_RESPONSE.removesuffix(b"hello from backend\n")
    _, _, plain = reading(ResponseReader(), [head_answer], [b"HEAD"])
    assert not plain
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
    events, status, plain = reading(ResponseReader(), [chunked], [b"GET"])
    assert not plain and status is None
    assert isinstance(events[0], ResponseHead) and events[0].chunked


def test_a_body_past_the_chunk_is_left_to_llhttp() -> None:
    data = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nok"
    reader = RequestReader()
    events, status, plain = reading(reader, [data, b"ok"], [])
    assert not plain and status is None
    assert isinstance(events[0], RequestHead) and events[0].content_length == 4


def test_pieces_decline_what_is_not_plain() -> None:
    assert head_lines(b"GET / HTTP/1.1\r\nHost: a\r\n", 0, 65536, 100) == []  # not whole
    assert head_lines(b"GET / HTTP/1.1\nHost: a\r\n\r\n", 0, 65536, 100) == []  # bare LF
    assert head_lines(b"GET / HTTP/1.1\r\nX: \x80\r\n\r\n", 0, 65536, 100) == []  # obs-text
    # A lone CR, and a CR that ends the head, which splitlines() drops: together their sizes
    # add up to that of one CRLF.
    assert head_lines(b"GET / HTTP/1.1\r\nA: b\rC: d\r\nE: f\r\r\n\r\n", 0, 65536, 100) == []
    assert head_lines(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 0, 65536, 0) == []  # header count
    assert head_lines(b"xGET / HTTP/1.1\r\nHost: a\r\n\r\n", 1, 65536, 100) == [
        b"GET / HTTP/1.1",
        b"Host: a",
    ]
    assert request_line(b"GET  / HTTP/1.1") == []
    assert request_line(b"GET * HTTP/1.1") == []
    assert request_line(b"GET /<> HTTP/1.1") == []
    assert request_line(b"GET /a?b HTTP/1.0") == [b"GET", b"/a?b", b"1.0"]
    assert status_code(b"HTTP/1.1 200 OK") == 200
    assert status_code(b"HTTP/1.1 200") == 0
    assert status_code(b"HTTP/2.0 200 OK") == 0
    assert header_pairs([b"", b"A:  b \t", b"C:"]) == [(b"A", b"b"), (b"C", b"")]
    assert header_pairs([b"", b"A : b"]) is None
    assert header_pairs([b"", b"A"]) is None
    assert decimal(b"0") == 0
    assert decimal(b"123456789012345") == 123456789012345
    assert decimal(b"1234567890123456") == -1
    assert decimal(b"") == -1
    assert decimal(b"1a") == -1
    assert decimal(b"+1") == -1


def test_the_lowering_table_lowers_as_bytes_lower_does() -> None:
    every_byte = bytes(range(256))
    assert every_byte.translate(ASCII_LOWER) == every_byte.lower()
