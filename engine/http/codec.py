"""Sans-IO HTTP/1.1 readers: bytes in, events out, on llhttp (httptools).

A reader turns the bytes of one connection into events. Every ``RequestHead`` or
``ResponseHead`` is followed by zero or more ``Body`` and exactly one ``END_OF_MESSAGE``.
After the ``END_OF_MESSAGE`` of an upgrade request (or of a 101 response) comes one
``Upgraded`` holding the bytes that followed; from then on every fed chunk comes back
as another ``Upgraded``, untouched.

llhttp runs in strict mode and already refuses most hostile shapes (obs-fold, bare LF,
invalid name characters, whitespace before the colon, CR/LF/NUL/CTL in values, bad or
duplicate Content-Length, bad chunk sizes, missing CRLF after chunk data, invalid
request line). The callbacks add what a proxy needs on top: Transfer-Encoding must be
exactly ``chunked`` and only on HTTP/1.1, one Host (required on HTTP/1.1), versions
1.0/1.1 only, no CONNECT, and limits on the size of a head.

Status codes chosen for requests: malformed input 400; CONNECT 405; a well-formed but
unknown method token 501 (best effort: only when the request starts the fed chunk,
otherwise 400); any HTTP version but 1.0 and 1.1, including HTTP/0.9 simple requests,
505; head or header count over the limit 431. Every refusal of a response is 502.

Known leniencies of llhttp that remain: a chunk size padded with leading zeros beyond
16 digits is accepted (its value cannot overflow, and bodies are re-framed by the proxy
so no other parser ever sees it); several spaces between method and target are accepted
(the request line is re-serialised, so nothing ambiguous is forwarded).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NoReturn

import httptools


class HttpError(Exception):
    """Refusal of a message; ``reason`` is fixed text that is safe to send to a client."""

    status: int
    reason: str

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(status, reason)
        self.status = status
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.status} {self.reason}"


def _get(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    size = len(name)
    for key, value in headers:
        # The length test skips lower() for nearly every header.
        if len(key) == size and key.lower() == name:
            return value
    return None


def _get_all(headers: list[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    size = len(name)
    return [value for key, value in headers if len(key) == size and key.lower() == name]


@dataclass(slots=True)
class RequestHead:
    method: bytes
    target: bytes
    version: bytes
    headers: list[tuple[bytes, bytes]]
    keep_alive: bool
    chunked: bool
    content_length: int | None
    upgrade: bool
    expect_continue: bool
    connection: list[bytes]  # values of the Connection headers, as sent

    def get(self, name: bytes) -> bytes | None:
        """First value of header ``name`` (given lowercase), or None."""
        return _get(self.headers, name)

    def get_all(self, name: bytes) -> list[bytes]:
        return _get_all(self.headers, name)

    @property
    def path(self) -> bytes:
        """The target without its query string."""
        target = self.target
        end = target.find(b"?")
        return target if end < 0 else target[:end]


@dataclass(slots=True)
class ResponseHead:
    status: int
    reason: bytes
    version: bytes
    headers: list[tuple[bytes, bytes]]
    keep_alive: bool
    chunked: bool
    content_length: int | None
    connection: list[bytes]  # values of the Connection headers, as sent

    def get(self, name: bytes) -> bytes | None:
        """First value of header ``name`` (given lowercase), or None."""
        return _get(self.headers, name)

    def get_all(self, name: bytes) -> list[bytes]:
        return _get_all(self.headers, name)


@dataclass(slots=True)
class Body:
    data: bytes  # payload, already de-chunked


class EndOfMessage:
    __slots__ = ()

    def __repr__(self) -> str:
        return "END_OF_MESSAGE"


END_OF_MESSAGE = EndOfMessage()


@dataclass(slots=True)
class Upgraded:
    rest: bytes  # tunnel bytes that followed the message; may be empty


Event = RequestHead | ResponseHead | Body | EndOfMessage | Upgraded

# What an idle reader holds instead of the finished message's lists (see _clear_message);
# immutable, so a stray append between messages fails loudly instead of leaking into others.
_NO_ITEMS: tuple = ()

# Reader states. Everything from _DONE on bypasses llhttp.
_IDLE = 0  # between messages
_HEAD = 1  # inside a head
_BODY = 2  # head delivered, body not finished
_DONE = 3  # last message on this connection finished: later bytes are ignored
_UPGRADE_BODY = 4  # upgrade request whose Content-Length body is still arriving
_UPGRADED = 5  # tunnel: bytes are passed through
_FAILED = 6  # refused: every call re-raises the error until reset()

_VERSIONS = {"1.1": b"1.1", "1.0": b"1.0"}
_WATCHED = frozenset((b"content-length", b"transfer-encoding", b"host", b"expect", b"connection"))
_WATCHED_LENGTHS = frozenset(len(name) for name in _WATCHED)
_TOKEN_CHARS = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _is_token(value: bytes) -> bool:
    return bool(value) and not value.translate(None, _TOKEN_CHARS)


class _Reader:
    """What request and response readers share: limits, header checks, event queue."""

    __slots__ = (
        "_begun",
        "_chunked",
        "_connection",
        "_content_length",
        "_error",
        "_events",
        "_expect_continue",
        "_head_fed",
        "_headers",
        "_host_count",
        "_keep_alive",
        "_max_head_bytes",
        "_max_headers",
        "_parser",
        "_reason",
        "_size",
        "_state",
        "_te",
        "_te_count",
        "_upgrade_left",
        "_upgrading",
        "_url",
    )

    _bad: int  # status for malformed input
    _too_big: int  # status for a head over the limits
    _what: str  # "request" or "response", for error texts

    def __init__(self, max_head_bytes: int = 65536, max_headers: int = 100) -> None:
        self._max_head_bytes = max_head_bytes
        self._max_headers = max_headers
        # A list, not a deque: it rarely holds more than a few events, and an empty deque
        # costs ten times the memory, on every one of thousands of idle connections.
        self._events: list[Event] = []
        self._start()

    def reset(self) -> None:
        """Drop all state, including a pending error, and start on a fresh parser."""
        self._start()

    def next_event(self) -> Event | None:
        """The next event, or None when more bytes are needed."""
        events = self._events
        return events.pop(0) if events else None

    def ends_next(self) -> bool:
        """Whether the next event is the end of a message (a bodiless message's end)."""
        events = self._events
        return bool(events) and events[0] is END_OF_MESSAGE

    def refusal(self) -> HttpError | None:
        """The error that refused this input, if one did."""
        return self._error if self._state == _FAILED else None

    def in_head(self) -> bool:
        """Whether part of a head has arrived and the rest has not."""
        return self._state == _HEAD

    # -- state -----------------------------------------------------------------

    def _start(self) -> None:
        # Made when the first bytes arrive (see _parse).
        self._parser: httptools.HttpRequestParser | httptools.HttpResponseParser | None = None
        self._events.clear()
        self._error: HttpError | None = None
        self._state = _IDLE
        self._begun = 0
        self._head_fed = 0
        self._keep_alive = True
        self._upgrading = False
        self._upgrade_left = 0
        self._clear_message()

    def _new_parser(self) -> httptools.HttpRequestParser | httptools.HttpResponseParser:
        raise NotImplementedError

    def _clear_message(self) -> None:
        self._headers: list[tuple[bytes, bytes]] = []
        self._size = 0
        self._content_length: int | None = None
        self._chunked = False
        self._te: bytes | None = None
        self._te_count = 0
        self._host_count = 0
        self._expect_continue = False
        self._connection: list[bytes] = []
        self._url = b""  # of a request
        self._reason = b""  # of a response

    def _fail(self, status: int, reason: str) -> NoReturn:
        error = HttpError(status, reason)
        self._error = error
        self._state = _FAILED
        self._events.clear()  # a refused input yields nothing, not even what preceded it
        raise error

    # -- feeding ---------------------------------------------------------------

    def _bypass(self, data: bytes) -> None:
        """Feeding in the states where llhttp is no longer used."""
        state = self._state
        if state == _UPGRADED:
            if data:
                self._events.append(Upgraded(data))
        elif state == _UPGRADE_BODY:
            self._upgrade_body(data)
        elif state == _FAILED:
            error = self._error
            assert error is not None
            raise HttpError(error.status, error.reason)
        # _DONE: the peer said this was its last message; what follows is ignored.

    def _parse(self, data: bytes) -> None:
        state = self._state
        self._begun = 0
        parser = self._parser
        if parser is None:
            parser = self._parser = self._new_parser()
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self._tunnel(data[upgrade.args[0] :])
            return
        except httptools.HttpParserError as exc:
            if self._error is None:
                if self._state == _DONE:
                    return  # bytes after a "last" message: llhttp refuses them, we ignore them
                self._error = self._map_error(exc, data, state)
            self._state = _FAILED
            self._events.clear()
            raise HttpError(self._error.status, self._error.reason) from None
        if self._state == _HEAD:
            # A header value arriving in slices is held by httptools until it ends, out of
            # sight of on_header: count what was fed while the head stays open. The chunk
            # in which the message began is not counted (it is bounded by the read size).
            if self._begun:
                self._head_fed = 0
            else:
                self._head_fed += len(data)
                if self._head_fed > self._max_head_bytes:
                    self._fail(self._too_big, f"{self._what} head too large")

    def _map_error(self, exc: Exception, data: bytes, state: int) -> HttpError:
        return HttpError(self._bad, f"malformed {self._what}: {exc}")

    def _tunnel(self, rest: bytes) -> None:
        if self._upgrade_left:
            self._state = _UPGRADE_BODY
            self._upgrade_body(rest)
        else:
            self._state = _UPGRADED
            self._events.append(Upgraded(rest))

    def _upgrade_body(self, data: bytes) -> None:
        # llhttp skips the body of an upgrade request: it is cut from the tunnel bytes here.
        left = self._upgrade_left
        if len(data) < left:
            if data:
                self._events.append(Body(data))
                self._upgrade_left = left - len(data)
            return
        self._upgrade_left = 0
        events = self._events
        events.append(Body(data[:left]))
        events.append(END_OF_MESSAGE)
        self._state = _UPGRADED
        events.append(Upgraded(data[left:]))

    # -- llhttp callbacks --------------------------------------------------------

    def on_message_begin(self) -> None:
        self._state = _HEAD
        self._begun += 1
        self._clear_message()

    def on_header(self, name: bytes, value: bytes) -> None:
        # Runs for every header: keep it short. The count limit is checked once the head
        # (or the trailers) ended; until then the byte limit bounds the count.
        value = value.rstrip(b" \t")  # llhttp strips leading OWS only
        self._headers.append((name, value))
        size = self._size + len(name) + len(value) + 4
        self._size = size
        if size > self._max_head_bytes:
            self._fail(self._too_big, f"{self._what} head too large")
        if len(name) in _WATCHED_LENGTHS:  # most names are not: spare them lower()
            lname = name.lower()
            if lname in _WATCHED and self._state == _HEAD:  # trailers are not looked at
                self._watch(lname, value)

    def _check_count(self) -> None:
        if len(self._headers) > self._max_headers:
            self._fail(self._too_big, f"too many {self._what} headers")

    def _watch(self, lname: bytes, value: bytes) -> None:
        if lname == b"content-length":
            if self._content_length is not None or not value.isdigit():
                self._fail(self._bad, "invalid Content-Length")
            self._content_length = int(value)
        elif lname == b"transfer-encoding":
            self._te_count += 1
            self._te = value
        elif lname == b"host":
            self._host_count += 1
        elif lname == b"expect":
            self._expect_continue = value.lower() == b"100-continue"
        else:
            self._connection.append(value)

    def _framing(self, version: bytes) -> None:
        """Transfer-Encoding rules shared by both directions; sets _chunked."""
        if self._te_count:
            if version != b"1.1":
                self._fail(self._bad, "Transfer-Encoding on HTTP/1.0")
            if self._te_count > 1:
                self._fail(self._bad, "repeated Transfer-Encoding")
            if self._content_length is not None:
                self._fail(self._bad, "both Content-Length and Transfer-Encoding")
            te = self._te
            assert te is not None
            if te.lower() != b"chunked":
                self._fail(self._bad, "unsupported Transfer-Encoding")
            self._chunked = True

    def _end_head(self) -> None:
        """Headers were delivered: what follows belongs to the body, trailers included."""
        self._state = _BODY
        self._headers = []  # trailers land here and are dropped


class RequestReader(_Reader):
    """Reads the requests a client sends on one connection."""

    __slots__ = ()  # one per client connection: no instance dict

    _bad = 400
    _too_big = 431
    _what = "request"

    def _new_parser(self) -> httptools.HttpRequestParser:
        return httptools.HttpRequestParser(self)

    def next_event(self) -> Event | None:
        """The next event, or None when more bytes are needed."""
        events = self._events
        if not events:
            return None
        event = events.pop(0)
        if not events and self._state == _IDLE:
            # Between requests llhttp holds nothing a fresh parser lacks, and a parser with its
            # bound callbacks is ~0.9 KB on each of thousands of idle keep-alive connections:
            # drop it; the next request's bytes make a new one (~0.7 µs). The lists of the
            # finished message are made anew when the next one begins: let them go too.
            self._parser = None
            self._headers = self._connection = _NO_ITEMS  # type: ignore[assignment]
        return event

    def at_rest(self) -> bool:
        """Between requests with nothing held: from here on it behaves as a new reader would."""
        return (
            self._state == _IDLE
            and self._parser is None
            and self._error is None
            and not self._events
        )

    def feed(self, data: bytes) -> None:
        """Parse ``data``; raises HttpError on malformed or hostile input."""
        if self._state >= _DONE:
            self._bypass(data)
        else:
            self._parse(data)

    def feed_eof(self) -> None:
        """The client closed; raises HttpError(400) if a request was cut short."""
        if self._state in (_HEAD, _BODY, _UPGRADE_BODY):
            self._fail(400, "request cut short by end of stream")
        if self._state == _FAILED:
            self._bypass(b"")

    def _map_error(self, exc: Exception, data: bytes, state: int) -> HttpError:
        text = str(exc)
        if isinstance(exc, httptools.HttpParserInvalidMethodError):
            if state == _IDLE and self._begun == 1:
                # The refused request starts this chunk: a token followed by a space is a
                # method llhttp does not know rather than garbage.
                line = data.lstrip(b"\r\n")
                space = line.find(b" ", 0, 33)
                if space > 0 and _is_token(line[:space]):
                    return HttpError(501, "method not implemented")
            return HttpError(400, "invalid method")
        if "HTTP version" in text or "PRI" in text:  # the latter: an HTTP/2 preface
            return HttpError(505, "HTTP version not supported")
        return HttpError(400, f"malformed request: {text}")

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._size += len(url)
        if self._size > self._max_head_bytes:
            self._fail(431, "request head too large")

    def on_headers_complete(self) -> None:
        if len(self._headers) > self._max_headers:
            self._check_count()
        parser = self._parser
        version = _VERSIONS.get(parser.get_http_version())
        if version is None:
            self._fail(505, "HTTP version not supported")
        method = parser.get_method()
        if method == b"CONNECT":
            self._fail(405, "CONNECT is not supported")
        if self._te_count:
            self._framing(version)
        if self._host_count != 1:
            if self._host_count:
                self._fail(400, "more than one Host header")
            if version == b"1.1":
                self._fail(400, "missing Host header")
        upgrade = parser.should_upgrade()
        if upgrade:
            if self._chunked:
                self._fail(400, "upgrade request with a chunked body")
            self._upgrading = True
            self._upgrade_left = self._content_length or 0
        keep_alive = parser.should_keep_alive()
        self._keep_alive = keep_alive
        self._events.append(
            RequestHead(
                method,
                self._url,
                version,
                self._headers,
                keep_alive,
                self._chunked,
                self._content_length,
                upgrade,
                self._expect_continue,
                self._connection,
            )
        )
        self._end_head()

    def on_body(self, body: bytes) -> None:
        self._events.append(Body(body))

    def on_message_complete(self) -> None:
        if len(self._headers) > self._max_headers:  # the trailers
            self._check_count()
        if self._upgrading:
            # llhttp pauses right after this; the tunnel starts in _tunnel().
            self._upgrading = False
            if self._upgrade_left:
                return  # the end comes after the body, cut from the tunnel bytes
            self._events.append(END_OF_MESSAGE)
            return
        self._events.append(END_OF_MESSAGE)
        self._state = _IDLE if self._keep_alive else _DONE


class ResponseReader(_Reader):
    """Reads the responses a real server sends on one connection."""

    __slots__ = (
        "_answering_head",
        "_awaiting",
        "_body_left",
        "_head_answered",
        "_head_tail",
        "_status",
        "_until_close",
    )

    _bad = 502
    _too_big = 502
    _what = "response"

    def _start(self) -> None:
        self._answering_head = False
        self._head_answered = False
        self._awaiting = False
        self._head_tail = b""
        self._until_close = False
        self._status = 0
        self._body_left = 0
        _Reader._start(self)

    def _new_parser(self) -> httptools.HttpResponseParser:
        return httptools.HttpResponseParser(self)

    def between_messages(self) -> bool:
        """Whether the last response ended cleanly, so the next one can be read as it is."""
        return (
            self._state == _IDLE
            and not self._events
            and not self._awaiting
            and not self._answering_head
            and not self._head_tail
        )

    def body_left(self) -> int:
        """Bytes of a Content-Length body still to come once every event was taken, else 0."""
        if self._state != _BODY or self._events or self._chunked or self._until_close:
            return 0
        return self._body_left

    def take_body_outside(self) -> int:
        """The rest of the body will bypass this reader (spliced from socket to socket): end
        the message as if it had arrived, and say how many bytes it still had to come."""
        left = self.body_left()
        if not left:
            raise ValueError("no Content-Length body is pending")
        self._body_left = 0
        self._awaiting = False
        self._state = _IDLE if self._keep_alive else _DONE
        self._parser = None  # mid-body: the next response needs a fresh one
        return left

    def expect(self, method: bytes) -> None:
        """Announce the method of the request the next final response answers.

        Call it once per request, before sending it. A HEAD answer never has a body;
        every expected response makes feed_eof() refuse an early close.
        """
        self._answering_head = method == b"HEAD"
        self._awaiting = True

    def feed(self, data: bytes) -> None:
        """Parse ``data``; raises HttpError(502) on a malformed response."""
        if self._state >= _DONE:
            self._bypass(data)
        elif self._answering_head:
            self._feed_head_answer(data)
        else:
            self._parse(data)

    def feed_eof(self) -> None:
        """The real server closed: ends a read-until-close body, or refuses a cut message."""
        state = self._state
        if state == _FAILED:
            self._bypass(b"")
        if state == _BODY and self._until_close:
            self._events.append(END_OF_MESSAGE)
            self._state = _DONE
            self._awaiting = False
            return
        if state in (_HEAD, _BODY):
            self._fail(502, "real server closed the connection mid-response")
        if self._awaiting and state != _UPGRADED:
            self._fail(502, "real server closed the connection without a response")

    def _feed_head_answer(self, data: bytes) -> None:
        # llhttp cannot be told that a response answers HEAD, so it is never fed past the end
        # of the final head, and is replaced there before it takes later bytes as a body.
        # Bare LF is refused by llhttp, so the first CRLFCRLF ends a head.
        while data:
            tail = self._head_tail
            end = (tail + data).find(b"\r\n\r\n")
            if end < 0:
                self._head_tail = (tail + data[-3:])[-3:]
                self._parse(data)
                return
            cut = end + 4 - len(tail)
            self._head_tail = b""
            self._parse(data[:cut])
            data = data[cut:]
            if self._state == _UPGRADED:
                if data:  # the cut fell at the end of a 101 head: the rest is tunnel data
                    self._events[-1] = Upgraded(data)
                return
            if self._head_answered:
                self._head_answered = False
                self._parser = self._new_parser()
                if data:
                    self.feed(data)
                return

    def on_status(self, reason: bytes) -> None:
        self._reason += reason
        self._size += len(reason)
        if self._size > self._max_head_bytes:
            self._fail(502, "response head too large")

    def on_headers_complete(self) -> None:
        if len(self._headers) > self._max_headers:
            self._check_count()
        parser = self._parser
        version = _VERSIONS.get(parser.get_http_version())
        if version is None:
            self._fail(502, "unsupported HTTP version in response")
        status = parser.get_status_code()
        if not 100 <= status <= 599:
            self._fail(502, "invalid response status")
        if self._te_count:
            self._framing(version)
        if status == 101 and not parser.should_upgrade():
            self._fail(502, "101 response without Upgrade")
        self._status = status
        chunked = self._chunked
        length = self._content_length
        if status >= 200 and self._answering_head:
            keep_alive = _keep_alive(version, self._connection)
            self._events.append(self._response_head(status, version, keep_alive))
            self._events.append(END_OF_MESSAGE)
            self._answering_head = False
            self._awaiting = False
            self._head_answered = True
            self._state = _IDLE if keep_alive else _DONE
            return
        keep_alive = parser.should_keep_alive()
        self._keep_alive = keep_alive
        self._body_left = length or 0
        self._until_close = (
            status >= 200 and status != 204 and status != 304 and not chunked and length is None
        )
        self._events.append(self._response_head(status, version, keep_alive))
        self._end_head()

    def _response_head(self, status: int, version: bytes, keep_alive: bool) -> ResponseHead:
        return ResponseHead(
            status,
            self._reason,
            version,
            self._headers,
            keep_alive,
            self._chunked,
            self._content_length,
            self._connection,
        )

    def on_body(self, body: bytes) -> None:
        if not self._head_answered:
            self._body_left -= len(body)
            self._events.append(Body(body))

    def on_message_complete(self) -> None:
        if self._head_answered:
            return  # already ended in on_headers_complete
        if len(self._headers) > self._max_headers:  # the trailers
            self._check_count()
        self._events.append(END_OF_MESSAGE)
        status = self._status
        if status >= 200:
            self._awaiting = False
            self._until_close = False
            self._state = _IDLE if self._keep_alive else _DONE
        elif status == 101:
            self._awaiting = False  # llhttp pauses right after this; see _tunnel()
        else:
            self._state = _IDLE  # interim response: the final one follows


def _keep_alive(version: bytes, connection: list[bytes]) -> bool:
    """Persistence from Connection headers alone, for bodiless answers to HEAD."""
    tokens = {token.strip().lower() for value in connection for token in value.split(b",")}
    if version == b"1.1":
        return b"close" not in tokens
    return b"keep-alive" in tokens
