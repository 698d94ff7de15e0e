"""The AI-Trader HTTP client (`relay.http_client`) against small servers on 127.0.0.1 that do
what the simulator never does: set cookies, speak TLS, stall, cut an answer short, close an
idle keep-alive connection. Each failure must come out as the httpx exception httpx's own
transport raises (RFC 9112 framing as h11 enforces it), so `AITraderClient` sorts it the same."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from relay.aitrader import AITraderClient, http_limits
from relay.errors import OutcomeUnknown, UpstreamUnavailable
from relay.http_client import AsyncioTransport, CookielessClient, transport_for

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
BODY = b'{"messages":[],"tasks":[],"has_more_messages":false}'


class Server:
    """Counts connections and keeps each request's head."""

    def __init__(self) -> None:
        self.connections = 0
        self.heads: list[bytes] = []
        self.closed = 0


async def read_head(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return head


def answer(body: bytes = BODY, *extra: bytes) -> bytes:
    headers = b"".join(h + b"\r\n" for h in extra)
    return (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n" % len(body)
        + headers
        + b"\r\n"
        + body
    )


@asynccontextmanager
async def serve(
    respond: Callable[[Server, int, bytes], bytes | None],
    *,
    ssl_context: ssl.SSLContext | None = None,
    answers_per_connection: int = 1_000,
) -> AsyncIterator[tuple[Server, str]]:
    """`respond(server, n, head)` gives the n-th answer on a connection; None closes it unanswered,
    the empty bytes string stalls (the client's deadline is tested). After
    `answers_per_connection` answers the server closes the connection, as a keep-alive timeout does."""
    state = Server()
    handlers: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        state.connections += 1
        try:
            for n in range(answers_per_connection):
                head = await read_head(reader)
                state.heads.append(head)
                out = respond(state, n, head)
                if out is None:
                    break
                if out == b"":
                    await asyncio.sleep(30)  # cancelled when the test's server closes
                    break
                writer.write(out)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()
            state.closed += 1

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ssl_context)
    port = server.sockets[0].getsockname()[1]
    scheme = "https" if ssl_context else "http"
    try:
        yield state, f"{scheme}://127.0.0.1:{port}"
    finally:
        server.close()
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()


def client(url: str, *, timeout: float = 5.0, ssl_context: ssl.SSLContext | None = None) -> CookielessClient:
    return CookielessClient(
        base_url=url, timeout=timeout, transport=AsyncioTransport(http_limits(4), ssl_context=ssl_context)
    )


async def until(condition: Callable[[], bool], deadline: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while not condition():
        assert loop.time() < end, "condition not met before the deadline"
        await asyncio.sleep(0.005)


# --- cookies -------------------------------------------------------------------------------------


async def test_a_cookie_one_answer_sets_is_not_sent_with_the_next_request() -> None:
    def respond(server: Server, n: int, head: bytes) -> bytes:
        return answer(BODY, b"Set-Cookie: session=agent-ann; Path=/")

    async with serve(respond) as (server, url):
        # httpx's own client keeps it: the check below can fail.
        async with httpx.AsyncClient(base_url=url) as plain:
            await plain.get("/a")
            await plain.get("/b")
        assert b"cookie: session=agent-ann" in server.heads[1].lower()
        server.heads.clear()
        async with client(url) as ours:
            await ours.get("/a")
            await ours.get("/b")
            assert not ours.cookies
    assert all(b"cookie" not in head.lower().replace(b"set-cookie", b"") for head in server.heads)
    assert len(server.heads) == 2


def test_the_client_refuses_a_cookie_jar() -> None:
    ours = client("http://127.0.0.1:1")
    with pytest.raises(TypeError):
        ours.cookies = {"session": "x"}
    with pytest.raises(TypeError):
        ours.cookies.set("session", "x")
    assert not ours.cookies


# --- the pool --------------------------------------------------------------------------------------


async def test_sequential_calls_reuse_one_connection() -> None:
    async with serve(lambda server, n, head: answer()) as (server, url), client(url) as ours:
        for _ in range(5):
            assert (await ours.get("/")).json()["messages"] == []
    assert server.connections == 1


async def test_an_idle_connection_the_server_closed_is_not_reused() -> None:
    # The server answers once per connection, then closes it (as a keep-alive timeout does).
    async with (
        serve(lambda server, n, head: answer(), answers_per_connection=1) as (server, url),
        client(url) as ours,
    ):
        await ours.get("/")
        await until(lambda: server.closed == 1)
        for _ in range(5):
            await asyncio.sleep(0)  # loop turns in which this side reads the end of stream
        # Reused, the closed connection would fail: "Server disconnected without sending a response".
        assert (await ours.get("/")).json()["messages"] == []
    assert server.connections == 2


async def test_a_large_body_arrives_whole_through_the_held_writes() -> None:
    # Writes are held until the answer is read, up to 64 KiB; past that they go out as written.
    # Either way the server must get every byte, in order, or the connection would not survive.
    bodies: list[bytes] = []

    def echo_length(server: Server, n: int, head: bytes) -> bytes:
        return answer(b'{"n": %d}' % int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0]))

    payload = {"text": "x" * 300_000}
    async with serve(echo_length) as (server, url), client(url) as ours:
        for _ in range(2):
            response = await ours.post("/", json=payload)
            bodies.append(response.content)
    sent = len(httpx.Request("POST", "http://x/", json=payload).content)
    assert bodies == [b'{"n": %d}' % sent] * 2
    assert server.connections == 1  # the body was read whole: the connection stayed usable


# --- errors, as httpx raises them ------------------------------------------------------------------


async def test_connection_refused_is_a_connect_error() -> None:
    async with client("http://127.0.0.1:1") as ours:
        with pytest.raises(httpx.ConnectError):
            await ours.get("/")


async def test_a_stalled_answer_is_a_read_timeout_and_an_unknown_outcome_for_a_heartbeat() -> None:
    async with serve(lambda server, n, head: b"") as (_server, url), client(url, timeout=0.3) as ours:
        with pytest.raises(httpx.ReadTimeout):
            await ours.post("/api/claw/agents/heartbeat", json={})
        with pytest.raises(OutcomeUnknown):
            await AITraderClient(ours, read_retries=0).heartbeat("t" * 43)


async def test_an_answer_cut_short_is_a_remote_protocol_error() -> None:
    cut = b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n" + BODY[:10]
    async with serve(lambda server, n, head: cut, answers_per_connection=1) as (_server, url), client(url) as ours:
        with pytest.raises(httpx.RemoteProtocolError):
            # The answer's head arrives, its body never does: the error comes from the body's stream.
            await ours.get("/")


async def test_garbage_instead_of_http_is_a_remote_protocol_error() -> None:
    async with serve(lambda server, n, head: b"SSH-2.0-OpenSSH\r\n\r\n") as (_server, url), client(url) as ours:
        with pytest.raises(httpx.RemoteProtocolError):
            await ours.get("/")


# --- TLS ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "relay-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    where = tmp_path_factory.mktemp("tls")
    cert_path, key_path = where / "cert.pem", where / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def server_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


async def test_tls_with_a_trusted_certificate(certificate: tuple[Path, Path]) -> None:
    trusted = ssl.create_default_context(cafile=str(certificate[0]))
    async with (
        serve(lambda server, n, head: answer(), ssl_context=server_tls(certificate)) as (server, url),
        client(url, ssl_context=trusted) as ours,
    ):
        for _ in range(3):
            response = await ours.get("/")
            assert response.json()["messages"] == []
    assert server.connections == 1  # TLS connections are pooled too


async def test_an_untrusted_certificate_is_refused_before_anything_is_sent(certificate: tuple[Path, Path]) -> None:
    async with (
        serve(lambda server, n, head: answer(), ssl_context=server_tls(certificate)) as (server, url),
        client(url) as ours,  # httpx's default trust store: a self-signed certificate fails
    ):
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await ours.get("/")
        with pytest.raises(UpstreamUnavailable) as caught:
            await AITraderClient(ours, read_retries=0).heartbeat("t" * 43)
        assert not isinstance(caught.value, OutcomeUnknown)
    assert server.heads == []


# --- proxies -------------------------------------------------------------------------------------


def test_an_environment_proxy_keeps_httpx_s_own_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    limits = http_limits(4)
    assert isinstance(transport_for("https://ai4trade.ai", limits), AsyncioTransport)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    assert transport_for("https://ai4trade.ai", limits) is None
    assert isinstance(transport_for("http://127.0.0.1:8000", limits), AsyncioTransport)  # no http proxy
    monkeypatch.setenv("ALL_PROXY", "http://proxy.invalid:3128")
    assert transport_for("http://127.0.0.1:8000", limits) is None
    monkeypatch.setenv("NO_PROXY", "ai4trade.ai")
    assert isinstance(transport_for("https://ai4trade.ai", limits), AsyncioTransport)
