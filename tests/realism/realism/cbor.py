"""A small CBOR decoder (RFC 8949), enough to read the body of an rpc-v2-cbor request: the IAM
check needs the parameters of calls that botocore sends in CBOR (Transcribe, CloudWatch), which
the validator does not parse (docs/realism.md, "What it does not model")."""

from __future__ import annotations

import struct


class CborError(ValueError):
    pass


_BREAK = object()


class _Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise CborError("truncated CBOR")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def arg(self, info: int) -> int:
        if info < 24:
            return info
        if info == 24:
            return self.take(1)[0]
        if info == 25:
            return struct.unpack(">H", self.take(2))[0]
        if info == 26:
            return struct.unpack(">I", self.take(4))[0]
        if info == 27:
            return struct.unpack(">Q", self.take(8))[0]
        raise CborError("bad additional information %d" % info)

    def item(self, depth: int = 0):
        if depth > 100:
            raise CborError("CBOR nested too deeply")
        head = self.take(1)[0]
        major, info = head >> 5, head & 31
        if major == 0:
            return self.arg(info)
        if major == 1:
            return -1 - self.arg(info)
        if major in (2, 3):
            if info == 31:  # indefinite length: a sequence of definite chunks
                parts = []
                while True:
                    if self.data[self.pos:self.pos + 1] == b"\xff":
                        self.pos += 1
                        break
                    parts.append(self.item(depth + 1))
                return b"".join(parts) if major == 2 else "".join(parts)
            raw = self.take(self.arg(info))
            return raw if major == 2 else raw.decode("utf-8", "replace")
        if major == 4:
            out = []
            if info == 31:
                while True:
                    v = self.item(depth + 1)
                    if v is _BREAK:
                        return out
                    out.append(v)
            for _ in range(self.arg(info)):
                out.append(self.item(depth + 1))
            return out
        if major == 5:
            out = {}
            if info == 31:
                while True:
                    k = self.item(depth + 1)
                    if k is _BREAK:
                        return out
                    out[k if isinstance(k, (str, int)) else str(k)] = self.item(depth + 1)
            for _ in range(self.arg(info)):
                k = self.item(depth + 1)
                out[k if isinstance(k, (str, int)) else str(k)] = self.item(depth + 1)
            return out
        if major == 6:
            self.arg(info)  # the tag (1: epoch time, ...): the value is kept as it is
            return self.item(depth + 1)
        # major 7: simple values and floats
        if info == 20:
            return False
        if info == 21:
            return True
        if info in (22, 23):
            return None
        if info == 25:
            return _half(struct.unpack(">H", self.take(2))[0])
        if info == 26:
            return struct.unpack(">f", self.take(4))[0]
        if info == 27:
            return struct.unpack(">d", self.take(8))[0]
        if info == 31:
            return _BREAK
        if info < 24:
            return info
        if info == 24:
            return self.take(1)[0]
        raise CborError("bad simple value %d" % info)


def _half(h: int) -> float:
    sign = -1.0 if h & 0x8000 else 1.0
    exp = (h >> 10) & 0x1F
    frac = h & 0x3FF
    if exp == 0:
        return sign * frac * 2.0 ** -24
    if exp == 31:
        return sign * float("inf") if frac == 0 else float("nan")
    return sign * (1 + frac / 1024.0) * 2.0 ** (exp - 15)


def loads(data: bytes):
    """The first CBOR item of data."""
    if not data:
        return None
    r = _Reader(data)
    v = r.item()
    if v is _BREAK:
        raise CborError("unexpected break")
    return v
