"""tests/pooler/wire.py: small helpers shared by the pooler's tests and its
benchmark: a free loopback port, a process's resident memory, and a raw
protocol-3 startup packet."""
import socket
import struct


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def startup_packet(user="postgres", db="postgres"):
    body = struct.pack("!I", 196608) + b"user\0" + user.encode() + b"\0database\0" + db.encode() + b"\0\0"
    return struct.pack("!I", len(body) + 4) + body
