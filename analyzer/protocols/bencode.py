"""Bencode (BEP 3): the project's one decoder and encoder.

Decoding is iterative with explicit limits (depth, item count, string
length), in the spirit of libtorrent's bdecode: malformed input raises
``BencodeError`` with a closed error code and the byte position, never any
other exception.  Dictionary keys stay ``bytes``; strings stay ``bytes``.
"""
from __future__ import annotations

MAX_DEPTH = 64
MAX_ITEMS = 1_000_000
MAX_INT_DIGITS = 64


class BencodeError(ValueError):
    """``code`` is one of: truncated, expected_digit, expected_colon, leading_zero,
    bad_integer, depth_exceeded, limit_exceeded, trailing_data, unsorted_keys,
    non_string_key, unexpected_end."""

    def __init__(self, code: str, pos: int):
        super().__init__(f"{code} at byte {pos}")
        self.code = code
        self.pos = pos


def _int(data: bytes, pos: int, end_char: int) -> tuple[int, int]:
    """Parse digits (optional '-') up to end_char; return (value, index after end_char)."""
    end = data.find(end_char, pos, pos + MAX_INT_DIGITS + 2)
    if end < 0:
        raise BencodeError("truncated" if len(data) - pos <= MAX_INT_DIGITS else "bad_integer", pos)
    text = data[pos:end]
    neg = text[:1] == b"-"
    digits = text[1:] if neg else text
    if not digits or not digits.isdigit():
        raise BencodeError("expected_digit" if end_char == 0x3A else "bad_integer", pos)
    if (digits[0] == 0x30 and len(digits) > 1) or (neg and digits == b"0"):
        raise BencodeError("leading_zero", pos)
    return (-int(digits) if neg else int(digits)), end + 1


def decode(data: bytes, *, allow_trailing: bool = False, strict_keys: bool = False):
    """Decode one bencoded value.

    ``allow_trailing`` returns ``(value, end)`` and accepts bytes after the
    value (BEP 9 metadata messages carry a payload there).  ``strict_keys``
    rejects dictionaries whose keys are not sorted and unique (as the info
    dictionary must be for its hash to be reproducible).
    """
    data = bytes(data)
    n = len(data)
    pos = 0
    items = 0
    stack: list = []  # open containers: list, or _DictFrame
    while True:
        if pos >= n:
            raise BencodeError("truncated", pos)
        c = data[pos]
        items += 1
        if items > MAX_ITEMS:
            raise BencodeError("limit_exceeded", pos)
        if c == 0x65:  # 'e'
            if not stack:
                raise BencodeError("expected_digit", pos)
            top = stack.pop()
            if isinstance(top, _DictFrame):
                if top.key is not None:
                    raise BencodeError("truncated", pos)  # a key without its value
                value = top.d
            else:
                value = top
            pos += 1
        elif c == 0x69:  # 'i'
            value, pos = _int(data, pos + 1, 0x65)
        elif c == 0x6C or c == 0x64:  # 'l', 'd'
            if len(stack) >= MAX_DEPTH:
                raise BencodeError("depth_exceeded", pos)
            stack.append([] if c == 0x6C else _DictFrame())
            pos += 1
            continue
        elif 0x30 <= c <= 0x39:
            length, start = _int(data, pos, 0x3A)
            if start + length > n:
                raise BencodeError("truncated", pos)
            value = data[start:start + length]
            pos = start + length
        else:
            raise BencodeError("expected_digit", pos)
        if not stack:
            break
        top = stack[-1]
        if isinstance(top, list):
            top.append(value)
        elif top.key is None:
            if not isinstance(value, bytes):
                raise BencodeError("non_string_key", pos)
            if strict_keys and top.d and value <= next(reversed(top.d)):
                raise BencodeError("unsorted_keys", pos)
            top.key = value
        else:
            top.d[top.key] = value
            top.key = None
    if allow_trailing:
        return value, pos
    if pos != n:
        raise BencodeError("trailing_data", pos)
    return value


class _DictFrame:
    __slots__ = ("d", "key")

    def __init__(self):
        self.d = {}
        self.key = None


def encode(value) -> bytes:
    out: list[bytes] = []
    _encode(value, out, 0)
    return b"".join(out)


def _encode(v, out: list, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ValueError("bencode: nesting too deep")
    if isinstance(v, bool):
        raise TypeError("bencode has no booleans")
    if isinstance(v, int):
        out.append(b"i%de" % v)
    elif isinstance(v, (bytes, bytearray, memoryview)):
        b = bytes(v)
        out.append(b"%d:" % len(b))
        out.append(b)
    elif isinstance(v, str):
        _encode(v.encode(), out, depth)
    elif isinstance(v, (list, tuple)):
        out.append(b"l")
        for x in v:
            _encode(x, out, depth + 1)
        out.append(b"e")
    elif isinstance(v, dict):
        out.append(b"d")
        keys = {(k.encode() if isinstance(k, str) else bytes(k)): x for k, x in v.items()}
        for k in sorted(keys):
            _encode(k, out, depth + 1)
            _encode(keys[k], out, depth + 1)
        out.append(b"e")
    else:
        raise TypeError(f"cannot bencode {type(v).__name__}")
