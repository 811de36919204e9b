"""Bounding text that comes from outside (provider errors) before it is stored anywhere.

Status fields have schema limits (ErrorInfo.message: 4,096 characters) and a status
write that breaks one is refused as a whole, so a Scene could never record its failure.
Every provider message is cut well below that, keeping its head and its tail (a
traceback says what failed at its end) with a marker that says how much was cut.
"""

from __future__ import annotations

MAX_PROVIDER_TEXT = 2000
"""Longest provider message kept: status, Events and logs all carry at most this."""


def bound(text: str, limit: int = MAX_PROVIDER_TEXT) -> str:
    """`text` if it fits in `limit` characters, else its head and tail around a marker."""
    if len(text) <= limit:
        return text
    widest = len(_marker(len(text)))  # the count cut never has more digits than len(text)
    room = max(limit - widest, 0)
    head = room * 2 // 5
    tail = room - head
    return text[:head] + _marker(len(text) - room) + (text[-tail:] if tail else "")


def _marker(cut: int) -> str:
    return f"\n[... {cut} characters cut ...]\n"
