"""Message bodies framed as views, not copies (docs/adr/0008).

aiormq splits a body into frame-sized chunks by reading it through a `BytesIO`, so a large
envelope is held twice more while it is marshalled (the chunks, then the frames). Slicing a
`memoryview` instead gives pamqp the same bytes with no copy. aiormq has no hook for this, so
`share_body_frames` replaces that one method, once, and only where it has the expected shape.
"""

from __future__ import annotations

import inspect
from typing import Any

import structlog
from aiormq.channel import Channel
from pamqp.body import ContentBody

log = structlog.get_logger(__name__)

_EXPECTED = ["self", "body"]


def body_frames(body: bytes, frame_size: int) -> list[ContentBody]:
    """`body` as content-body frames of at most `frame_size` bytes, each a view into it."""
    view = memoryview(body)
    # pamqp joins each frame's value into the wire bytes; a view serves as well as bytes.
    return [ContentBody(view[at : at + frame_size]) for at in range(0, len(view), frame_size)]  # type: ignore[arg-type]


def _split_body(self: Channel, body: bytes) -> list[ContentBody]:
    return body_frames(body, self.max_content_size)


def share_body_frames() -> bool:
    """Make aiormq frame bodies as views; False (and aiormq left as it is) if it has changed."""
    current: Any = getattr(Channel, "_split_body", None)
    if current is _split_body:
        return True
    if current is None or list(inspect.signature(current).parameters) != _EXPECTED:
        log.warning("body_frames_not_shared", reason="aiormq_changed")
        return False
    Channel._split_body = _split_body  # type: ignore[method-assign]
    return True
