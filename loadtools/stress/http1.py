"""HTTP/1.1 by hand over asyncio streams, for clients that misbehave on
purpose or must see exactly what the server sends."""

import asyncio


async def read_response(reader):
    """(status, headers with lower-case names, body) of one response."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0") or 0)
    body = await reader.readexactly(min(n, 1 << 20))
    return status, headers, body


async def close_writer(writer):
    if writer is None:
        return
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), 2)
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
        pass


def err_name(e):
    if isinstance(e, asyncio.TimeoutError):
        return "timeout"
    if isinstance(e, asyncio.IncompleteReadError):
        return "closed before a whole response"
    return type(e).__name__


async def http1_get(addr, port, path, timeout):
    """The status of a GET on a new connection, as text, or what went wrong."""
    writer = None
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(addr, port), timeout)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {addr}:{port}\r\nConnection: close\r\n\r\n".encode())
        line = await asyncio.wait_for(reader.readline(), timeout)
        return line.split()[1].decode() if line else "closed"
    except (OSError, asyncio.TimeoutError, IndexError) as e:
        return type(e).__name__
    finally:
        if writer is not None:
            writer.close()
