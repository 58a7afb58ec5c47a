"""redislib — what the Redis end-to-end tests share: one command to a
redis-server on 127.0.0.1, plain or over TLS, and its decoded answer."""

import socket
import ssl


def command(port, *args, cafile=None, timeout=5.0):
    """Send one command; return its answer (str for a status, int, bytes for
    a bulk string, lists for arrays, None for nil). cafile: speak TLS, trusting
    that CA, to a server whose certificate names localhost. An error answer
    raises RuntimeError."""
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        if cafile:
            s = ssl.create_default_context(cafile=cafile).wrap_socket(
                s, server_hostname="localhost")
        s.sendall(out)
        return read_reply(s.makefile("rb"))
    finally:
        s.close()


def read_reply(f):
    line = f.readline()
    if not line:
        raise ConnectionError("closed")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RuntimeError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        return None if n < 0 else f.read(n + 2)[:-2]
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [read_reply(f) for _ in range(n)]
    raise RuntimeError("bad answer %r" % line)
