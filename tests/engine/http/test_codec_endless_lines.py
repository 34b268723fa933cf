"""Lines that never end: every open part of a message is bounded while it streams.

A name, value, target, reason phrase, chunk-size line or chunk extension that keeps
arriving without its line end must be refused once about the head limit has been fed,
never buffered until the peer stops.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from passerelle.engine.http.codec import (
    END_OF_MESSAGE,
    Body,
    Event,
    HttpError,
    RequestReader,
    ResponseReader,
)

LIMIT = 4096
PIECE = 512
ENOUGH = 200 * LIMIT  # far past the limit: a reader that only buffers takes all of it

REQUEST_HEAD = b"POST /upload HTTP/1.1\r\nHost: example.test\r\nTransfer-Encoding: chunked\r\n\r\n"
RESPONSE_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"

Reader = RequestReader | ResponseReader


def request_reader() -> RequestReader:
    return RequestReader(max_head_bytes=LIMIT)


def response_reader() -> ResponseReader:
    reader = ResponseReader(max_head_bytes=LIMIT)
    reader.expect(b"GET")
    return reader


def fed_until_refused(reader: Reader, start: bytes, piece: bytes) -> tuple[int, str]:
    """Feeds ``start``, then ``piece`` after ``piece`` until one is refused: the bytes of the
    pieces taken before it, and the refusal."""
    reader.feed(start)
    fed = 0
    try:
        while fed < ENOUGH:
            reader.feed(piece)
            fed += len(piece)
    except HttpError as refusal:
        return fed, str(refusal)
    pytest.fail(f"{fed} bytes of a line that never ends were taken without a refusal")


# (id, reader, what is fed first, the piece repeated, the refusal)
ENDLESS: list[tuple[str, Callable[[], Reader], bytes, bytes, str]] = [
    # the head: a request
    ("request target", request_reader, b"GET /", b"a" * PIECE, "431 request head too large"),
    (
        "request header name",
        request_reader,
        b"GET / HTTP/1.1\r\nHost: example.test\r\nX-",
        b"n" * PIECE,
        "431 request head too large",
    ),
    (
        "request header value",
        request_reader,
        b"GET / HTTP/1.1\r\nHost: example.test\r\nX-Endless: ",
        b"v" * PIECE,
        "431 request head too large",
    ),
    # the head: a response
    (
        "reason phrase",
        response_reader,
        b"HTTP/1.1 200 ",
        b"O" * PIECE,
        "502 response head too large",
    ),
    (
        "response header name",
        response_reader,
        b"HTTP/1.1 200 OK\r\nX-",
        b"n" * PIECE,
        "502 response head too large",
    ),
    (
        "response header value",
        response_reader,
        b"HTTP/1.1 200 OK\r\nX-Endless: ",
        b"v" * PIECE,
        "502 response head too large",
    ),
    # trailers of a chunked request body
    (
        "request trailer name",
        request_reader,
        REQUEST_HEAD + b"5\r\nhello\r\n0\r\nX-",
        b"n" * PIECE,
        "431 request head too large",
    ),
    (
        "request trailer value",
        request_reader,
        REQUEST_HEAD + b"5\r\nhello\r\n0\r\nX-Endless: ",
        b"v" * PIECE,
        "431 request head too large",
    ),
    (
        "request trailer value after a whole trailer",
        request_reader,
        REQUEST_HEAD + b"0\r\nX-Done: yes\r\nX-Endless: ",
        b"v" * PIECE,
        "431 request head too large",
    ),
    # trailers of a chunked response body
    (
        "response trailer name",
        response_reader,
        RESPONSE_HEAD + b"5\r\nhello\r\n0\r\nX-",
        b"n" * PIECE,
        "502 response head too large",
    ),
    (
        "response trailer value",
        response_reader,
        RESPONSE_HEAD + b"5\r\nhello\r\n0\r\nX-Endless: ",
        b"v" * PIECE,
        "502 response head too large",
    ),
    # chunk-size lines
    (
        "request chunk size of zeros",
        request_reader,
        REQUEST_HEAD + b"5\r\nhello\r\n",
        b"0" * PIECE,
        "431 request head too large",
    ),
    (
        "request chunk extension",
        request_reader,
        REQUEST_HEAD + b"5\r\nhello\r\n5;name=",
        b"v" * PIECE,
        "431 request head too large",
    ),
    (
        "response chunk size of zeros",
        response_reader,
        RESPONSE_HEAD,
        b"0" * PIECE,
        "502 response head too large",
    ),
    (
        "response chunk extension",
        response_reader,
        RESPONSE_HEAD + b"5;name=",
        b"v" * PIECE,
        "502 response head too large",
    ),
]


@pytest.mark.parametrize(
    ("make", "start", "piece", "refusal"),
    [case[1:] for case in ENDLESS],
    ids=[case[0] for case in ENDLESS],
)
def test_a_line_that_never_ends_is_refused_while_it_streams(
    make: Callable[[], Reader], start: bytes, piece: bytes, refusal: str
) -> None:
    fed, text = fed_until_refused(make(), start, piece)
    assert text == refusal
    # what the reader held when it refused is about the limit, not what the peer sent
    assert fed <= LIMIT + len(piece)


def test_a_line_that_never_ends_is_refused_however_it_is_cut() -> None:
    # One byte at a time, as from a slow peer: the byte past the limit is the one refused.
    fed, text = fed_until_refused(request_reader(), REQUEST_HEAD + b"0\r\nX-Endless: ", b"v")
    assert (fed, text) == (LIMIT, "431 request head too large")


def test_many_whole_trailers_without_an_end_are_refused_while_they_stream() -> None:
    # The count limit is out of reach: only the size can stop them.
    reader = RequestReader(max_head_bytes=LIMIT, max_headers=1_000_000)
    piece = b"X-T: v\r\n" * 64
    fed, text = fed_until_refused(reader, REQUEST_HEAD + b"0\r\n", piece)
    assert text == "431 request head too large"
    assert fed <= LIMIT + len(piece)


def feed_in_pieces(reader: Reader, data: bytes, size: int) -> list[Event]:
    events: list[Event] = []
    for start in range(0, len(data), size):
        reader.feed(data[start : start + size])
        while (event := reader.next_event()) is not None:
            events.append(event)
    return events


def body_of(events: list[Event]) -> bytes:
    return b"".join(event.data for event in events if isinstance(event, Body))


@pytest.mark.parametrize("size", [1, 7, 512])
def test_a_long_chunked_body_of_small_chunks_is_not_taken_for_an_endless_line(
    size: int,
) -> None:
    # Far more framing than the limit in all, but never much of it between two data bytes.
    chunks = [bytes([65 + i % 26]) * (1 + i % 3) for i in range(3000)]
    framed = b"".join(b"%x;ext=%d\r\n%s\r\n" % (len(c), i, c) for i, c in enumerate(chunks))
    data = REQUEST_HEAD + framed + b"0\r\nX-Sum: 1\r\n\r\n"
    events = feed_in_pieces(request_reader(), data, size)
    assert body_of(events) == b"".join(chunks)
    assert events[-1] is END_OF_MESSAGE


@pytest.mark.parametrize("size", [1, 100])
def test_trailers_just_under_the_limit_pass_in_pieces(size: int) -> None:
    # The head and trailers together count up to the limit; framing around them does not
    # push them over it.
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    head_size = len(b"Transfer-Encoding") + len(b"chunked") + 4 + len(b"OK")
    value = b"t" * (LIMIT - head_size - len(b"X-Big") - 4)
    data = head + b"3\r\nabc\r\n0\r\nX-Big: " + value + b"\r\n\r\n"
    reader = response_reader()
    events = feed_in_pieces(reader, data, size)
    assert body_of(events) == b"abc"
    assert events[-1] is END_OF_MESSAGE
    # one byte more and the same trailers are refused, as they always were
    with pytest.raises(HttpError, match="502 response head too large"):
        feed_in_pieces(response_reader(), data.replace(b": t", b": tt"), size)
