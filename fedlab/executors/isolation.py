"""Run TFF's ``worker_binary`` where no other host can reach it; serve it on a Unix socket.

TFF's worker binds ``[::]:<port>`` (every interface) with insecure gRPC and executes whatever
TensorFlow computation it is sent, so a worker reachable from the network runs anyone's code as the
researcher. This script (run by :func:`fedlab.executors.worker.launched_worker` as ``python -I -S
fedlab/executors/isolation.py ...``, so it imports only the standard library) puts the worker in a
network namespace of its own, entered through a new user namespace (no privilege needed): the
namespace has only its loopback interface, so the worker's ``[::]`` is reachable from nowhere but
the namespace itself. A forwarding process inside the namespace accepts connections on a Unix socket
in a private folder of the caller's (filesystem Unix sockets cross network namespaces) and relays
each to the worker's loopback port; the caller's gRPC channels connect to ``unix:<socket>``.

Where the kernel refuses the namespaces (unprivileged user namespaces switched off), the
worker runs in the caller's network namespace, reachable on every interface: the first line
this script writes to ``--status-fd`` says which (``isolated`` or ``exposed <port> <reason>``).

The process that runs this script becomes the worker itself (``exec``), so the caller's process
handle, exit status and signals are the worker's; the forwarder is its child and is killed by
the kernel when the worker ends (``PR_SET_PDEATHSIG``), as the worker is when the caller ends.
"""

import argparse
import ctypes
import errno
import fcntl
import os
import signal
import socket
import struct
import sys
import threading
import time

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
_PR_SET_PDEATHSIG = 1
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1
# How long a forwarded connection waits for the worker to start listening.
WORKER_LISTEN_TIMEOUT_SECONDS = 60.0
_RELAY_CHUNK_BYTES = 1 << 20

_libc = ctypes.CDLL(None, use_errno=True)


def die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process when its parent ends."""
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _write(path: str, text: str) -> None:
    with open(path, "w") as file:
        file.write(text)


def enter_private_network() -> None:
    """Move this (single-threaded) process into new user and network namespaces, loopback up.

    The user namespace maps this process's own user and group to themselves, so files it
    creates belong to the caller as before. Raises OSError when the kernel refuses.
    """
    uid, gid = os.getuid(), os.getgid()
    if _libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"unshare: {os.strerror(code)}")
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"{uid} {uid} 1")
    _write("/proc/self/gid_map", f"{gid} {gid} 1")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as control:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(control, _SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(control, _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | _IFF_UP))


def free_loopback_port() -> int:
    """A TCP port nothing listens on in this process's network namespace."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _relay(source: socket.socket, destination: socket.socket) -> None:
    """Copy bytes from ``source`` to ``destination`` until either side closes."""
    buffer = bytearray(_RELAY_CHUNK_BYTES)
    view = memoryview(buffer)
    try:
        while count := source.recv_into(buffer):
            destination.sendall(view[:count])
    except OSError:
        pass
    finally:
        for end, how in ((destination, socket.SHUT_WR), (source, socket.SHUT_RD)):
            try:
                end.shutdown(how)
            except OSError:
                pass


def connect_when_listening(port: int, timeout_seconds: float) -> socket.socket:
    """A connection to the worker on the loopback ``port``, waiting for it to listen."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port))
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def relay_both_ways(left: socket.socket, right: socket.socket) -> None:
    """Relay ``left`` and ``right`` to each other in two threads; close both when done."""
    def forward() -> None:
        _relay(left, right)
        back.join()
        left.close()
        right.close()

    back = threading.Thread(target=_relay, args=(right, left), daemon=True)
    back.start()
    threading.Thread(target=forward, daemon=True).start()


def forward_unix_socket(socket_path: str, port: int) -> None:
    """Accept connections on ``socket_path`` and relay each to the worker on ``port``."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path)
    os.chmod(socket_path, 0o600)
    listener.listen(64)
    while True:
        client, _ = listener.accept()
        try:
            worker = connect_when_listening(port, WORKER_LISTEN_TIMEOUT_SECONDS)
        except OSError:
            client.close()
            continue
        worker.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        relay_both_ways(client, worker)


def main(argv: list[str]) -> None:
    """Isolate (or report why not), fork the forwarder, become the worker."""
    parser = argparse.ArgumentParser(prog="fedlab/executors/isolation.py")
    parser.add_argument("--parent", type=int, required=True)
    parser.add_argument("--socket", required=True)
    parser.add_argument("--status-fd", type=int, required=True)
    parser.add_argument("--no-isolation", action="store_true",
                        help="stay in the caller's network namespace (as if refused)")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    die_with_parent()
    if os.getppid() != args.parent:
        os._exit(1)
    refused = None
    try:
        if args.no_isolation:
            raise OSError(errno.EPERM, "isolation turned off")
        enter_private_network()
    except OSError as error:
        refused = error.strerror or str(error)
    port = free_loopback_port()
    with os.fdopen(args.status_fd, "w") as status_file:
        status_file.write("isolated\n" if refused is None else f"exposed {port} {refused}\n")
    worker_pid = os.getpid()
    if os.fork() == 0:
        die_with_parent()
        if os.getppid() != worker_pid:
            os._exit(1)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the worker's SIGINT is not ours
        try:
            forward_unix_socket(args.socket, port)
        finally:
            os._exit(0)
    command = [part for part in args.command if part != "--"]
    os.execv(command[0], [*command, f"--port={port}"])


if __name__ == "__main__":
    main(sys.argv[1:])
