"""A remote worker's only door: mutual TLS on a TCP port, relayed to the isolated worker.

``python -m fedlab.worker`` runs TFF's worker isolated (:mod:`fedlab.executors.isolation`, reachable
only through a Unix socket in a private folder) and this gateway in front of it: each TCP
connection must complete a TLS handshake with a client certificate signed by the deployment's
CA (:mod:`fedlab.executors.credentials`), else it is refused and logged; an accepted
connection's bytes (gRPC's HTTP/2) are relayed to the worker's socket unchanged.
"""

import asyncio
import logging
import ssl
from collections.abc import Callable

log = logging.getLogger(__name__)
HANDSHAKE_TIMEOUT_SECONDS = 10.0
_CHUNK_BYTES = 1 << 20


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(_CHUNK_BYTES):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


def _refusal_reason(error: BaseException) -> str:
    if isinstance(error, TimeoutError | asyncio.TimeoutError):
        return f"no TLS handshake within {HANDSHAKE_TIMEOUT_SECONDS:.0f} s"
    return getattr(error, "reason", None) or str(error) or type(error).__name__


async def _relay_to_worker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                          socket_path: str) -> None:
    try:
        worker_reader, worker_writer = await asyncio.open_unix_connection(socket_path)
    except OSError as error:
        log.error("the TFF worker's socket %s: %s", socket_path, error)
        writer.close()
        return
    await asyncio.gather(_pipe(reader, worker_writer), _pipe(worker_reader, writer))


async def _handshake_then_relay(transport: asyncio.Transport, context: ssl.SSLContext,
                                socket_path: str) -> None:
    """TLS on an accepted connection (refused and logged on failure), then the relay."""
    loop = asyncio.get_running_loop()
    address = transport.get_extra_info("peername")
    peer = f"{address[0]}:{address[1]}" if isinstance(address, tuple) else str(address)
    reader = asyncio.StreamReader(limit=_CHUNK_BYTES)
    protocol = asyncio.StreamReaderProtocol(reader)
    try:
        tls = await loop.start_tls(transport, protocol, context, server_side=True,
                                   ssl_handshake_timeout=HANDSHAKE_TIMEOUT_SECONDS)
    except (ssl.SSLError, OSError, TimeoutError) as error:
        log.warning("refused a connection from %s: %s", peer, _refusal_reason(error))
        transport.abort()
        return
    protocol.connection_made(tls)
    writer = asyncio.StreamWriter(tls, protocol, reader, loop)
    subject = dict(part[0] for part in tls.get_extra_info("peercert")["subject"])
    log.info("accepted a connection from %s (%s)", peer, subject.get("commonName", "?"))
    await _relay_to_worker(reader, writer, socket_path)


class _Accepted(asyncio.Protocol):
    """A new TCP connection, not read from until its TLS handshake starts."""

    def __init__(self, context: ssl.SSLContext, socket_path: str, tasks: set):
        self.context, self.socket_path, self.tasks = context, socket_path, tasks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.pause_reading()  # the client's hello is the handshake's, not a stream's
        task = asyncio.get_running_loop().create_task(
            _handshake_then_relay(transport, self.context, self.socket_path))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


async def serve(host: str | None, port: int, context: ssl.SSLContext, socket_path: str,
                worker_ended: Callable[[], str | None], poll_seconds: float = 0.5) -> str:
    """Serve until the worker ends; returns how it ended (``worker_ended``'s line)."""
    tasks: set = set()
    server = await asyncio.get_running_loop().create_server(
        lambda: _Accepted(context, socket_path, tasks), host, port)
    addresses = ", ".join(_address(s.getsockname()) for s in server.sockets)
    log.info("serving TFF computations on %s to drivers with a certificate of the deployment's "
             "CA", addresses)
    async with server:
        while (ended := worker_ended()) is None:
            await asyncio.sleep(poll_seconds)
    return ended


def _address(name) -> str:
    host, port = name[0], name[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
