"""Mutations of bytes and text: what a hostile or clumsy hand does to a file or a message."""

from __future__ import annotations

import random
from collections.abc import Callable

__all__ = ["YAML_MUTATIONS", "mutate_yaml"]

Mutation = Callable[[random.Random, bytes], bytes]


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")


def flip_byte(rng: random.Random, data: bytes) -> bytes:
    """One byte replaced by any byte."""
    if not data:
        return bytes([rng.randrange(256)])
    at = rng.randrange(len(data))
    return data[:at] + bytes([rng.randrange(256)]) + data[at + 1 :]


def flip_bit(rng: random.Random, data: bytes) -> bytes:
    """One bit flipped."""
    if not data:
        return data
    at = rng.randrange(len(data))
    return data[:at] + bytes([data[at] ^ (1 << rng.randrange(8))]) + data[at + 1 :]


def truncate(rng: random.Random, data: bytes) -> bytes:
    """Cut anywhere (a file half written)."""
    return data[: rng.randrange(len(data) + 1)]


def delete_line(rng: random.Random, data: bytes) -> bytes:
    """One line gone."""
    lines = _lines(data)
    del lines[rng.randrange(len(lines))]
    return b"\n".join(lines)


def duplicate_line(rng: random.Random, data: bytes) -> bytes:
    """One line twice (a key twice, a step twice)."""
    lines = _lines(data)
    at = rng.randrange(len(lines))
    lines.insert(at, lines[at])
    return b"\n".join(lines)


def swap_lines(rng: random.Random, data: bytes) -> bytes:
    """Two lines exchanged (indentation and order broken)."""
    lines = _lines(data)
    a, b = rng.randrange(len(lines)), rng.randrange(len(lines))
    lines[a], lines[b] = lines[b], lines[a]
    return b"\n".join(lines)


def swap_values(rng: random.Random, data: bytes) -> bytes:
    """The values of two ``key: value`` lines exchanged (a number where a name goes, …)."""
    lines = _lines(data)
    pairs = [
        n for n, line in enumerate(lines) if b": " in line and not line.lstrip().startswith(b"#")
    ]
    if len(pairs) < 2:
        return data
    a, b = rng.sample(pairs, 2)
    key_a, _, value_a = lines[a].partition(b": ")
    key_b, _, value_b = lines[b].partition(b": ")
    lines[a], lines[b] = key_a + b": " + value_b, key_b + b": " + value_a
    return b"\n".join(lines)


_HOSTILE_VALUES = [
    b"null",
    b"~",
    b"-1",
    b"0",
    b"1e400",
    b".nan",
    b"-.inf",
    b"true",
    b"[]",
    b"{}",
    b"''",
    b"!!binary aGVsbG8=",
    b"!!python/object:os.system [ls]",
    b"!!set {a, b}",
    b"!!timestamp 2001-12-14",
    b"!!float NaN",
    b"!!int 0x1F",
    b"9" * 5000,
    b"'\\x00'",
    b'"\\0"',
    b'"\\ud800"',
    b"*undefined",
    b"&a [*a]",
    b"<<: *x",
    b"? complex key",
    b"|",
    b">-",
    b"'unterminated",
    b'"unterminated',
    b"{a: 1, a: 2}",
    b"[1, [2, [3",
    b"\xef\xbb\xbf",
    b"%YAML 1.1",
    b"---",
    b"...",
    "\u202e\u0085\u2028".encode(),
    b"\x1b[31mred",
    b"[red]markup[/red]",
]


def hostile_value(rng: random.Random, data: bytes) -> bytes:
    """A value replaced by something odd: tags, NaN, huge numbers, aliases, flow syntax."""
    lines = _lines(data)
    pairs = [n for n, line in enumerate(lines) if b": " in line]
    if not pairs:
        return data + b"\nx: " + rng.choice(_HOSTILE_VALUES)
    at = rng.choice(pairs)
    key, _, _ = lines[at].partition(b": ")
    lines[at] = key + b": " + rng.choice(_HOSTILE_VALUES)
    return b"\n".join(lines)


def deep_nesting(rng: random.Random, data: bytes) -> bytes:
    """A value nested tens to thousands of levels deep (flow or block style)."""
    depth = rng.choice([10, 63, 64, 65, 100, 1000, 5000, 20000])
    lines = _lines(data)
    at = rng.randrange(len(lines) + 1)
    style = rng.randrange(3)
    if style == 0:
        nested = b"deep: " + b"[" * depth + b"]" * depth
    elif style == 1:
        nested = b"deep: " + b"{a: " * depth + b"1" + b"}" * depth
    else:
        depth = min(depth, 300)
        nested = b"\n".join(b"  " * n + b"k%d:" % n for n in range(depth)) + b" 1"
    lines.insert(at, nested)
    return b"\n".join(lines)


def huge_string(rng: random.Random, data: bytes) -> bytes:
    """A value thousands to millions of bytes long (past the 1 MiB limit sometimes)."""
    size = rng.choice([1000, 100_000, 1_000_000, 1_048_577, 2_000_000])
    lines = _lines(data)
    pairs = [n for n, line in enumerate(lines) if b": " in line] or [0]
    at = rng.choice(pairs)
    key = lines[at].partition(b": ")[0] if b": " in lines[at] else b"description"
    lines[at] = key + b": " + rng.choice([b"x", b"\xc3\xa9", b"\\"]) * size
    return b"\n".join(lines)


def aliases(rng: random.Random, data: bytes) -> bytes:
    """Anchors and aliases: billion laughs, an alias to itself, aliases to undefined anchors,
    merge keys."""
    kind = rng.randrange(4)
    if kind == 0:
        levels = rng.choice([3, 6, 9, 12])
        bomb = [b'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
        bomb += [
            b"a%d: &a%d [%s]" % (n, n, b",".join([b"*a%d" % (n - 1)] * 9)) for n in range(1, levels)
        ]
        return data + b"\n" + b"\n".join(bomb) + b"\n"
    if kind == 1:
        return data + b"\nloop: &loop [*loop]\n"
    if kind == 2:
        return data.replace(b"timeout: 30s", b"timeout: *nowhere", 1) + b"\n"
    return b"base: &base {attempts: 3}\n" + data.replace(b"retry: {", b"retry: {<<: *base, ", 1)


def non_utf8(rng: random.Random, data: bytes) -> bytes:
    """Bytes that are not UTF-8 (Latin-1, a lone continuation byte, an overlong form, a
    UTF-16 byte order mark, a NUL)."""
    bad = rng.choice(
        [b"\xe9", b"\xff", b"\x80", b"\xc0\xaf", b"\xed\xa0\x80", b"\xff\xfe", b"\x00"]
    )
    at = rng.randrange(len(data) + 1)
    return data[:at] + bad + data[at:]


def tabs(rng: random.Random, data: bytes) -> bytes:
    """Indentation with tabs, or tabs anywhere."""
    if rng.randrange(2):
        return data.replace(b"\n  ", b"\n\t", rng.randrange(1, 6))
    at = rng.randrange(len(data) + 1)
    return data[:at] + b"\t" + data[at:]


def line_ends(rng: random.Random, data: bytes) -> bytes:
    """CR LF, lone CR, NEL or LS for line ends; a byte order mark in front."""
    choice = rng.randrange(4)
    if choice == 0:
        return data.replace(b"\n", b"\r\n")
    if choice == 1:
        return data.replace(b"\n", b"\r")
    if choice == 2:
        return data.replace(b"\n", "\u2028".encode(), rng.randrange(1, 4))
    return b"\xef\xbb\xbf" + data


def documents(rng: random.Random, data: bytes) -> bytes:
    """More than one YAML document, directives, or none at all."""
    choice = rng.randrange(4)
    if choice == 0:
        return data + b"\n---\n" + data
    if choice == 1:
        return b"%YAML 1.1\n%TAG ! tag:example.com,2000:\n---\n" + data
    if choice == 2:
        return b"---\n...\n"
    return b"- " + data.replace(b"\n", b"\n  ")


YAML_MUTATIONS: tuple[Mutation, ...] = (
    flip_byte,
    flip_bit,
    truncate,
    delete_line,
    duplicate_line,
    swap_lines,
    swap_values,
    hostile_value,
    deep_nesting,
    huge_string,
    aliases,
    non_utf8,
    tabs,
    line_ends,
    documents,
)


def mutate_yaml(rng: random.Random, data: bytes) -> tuple[bytes, list[str]]:
    """``data`` with one to three mutations; returns the names of those applied."""
    names = []
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        mutation = rng.choice(YAML_MUTATIONS)
        data = mutation(rng, data)
        names.append(mutation.__name__)
    return data, names
