"""Message bodies framed as views into the body, with aiormq's framing otherwise unchanged."""

from __future__ import annotations

import pamqp.frame
import pytest
from aiormq.channel import Channel

from gateway.queue import body_frames
from gateway.queue.body_frames import body_frames as frames_of
from gateway.queue.body_frames import share_body_frames


def test_frames_are_views_into_the_body_in_order() -> None:
    body = bytes(i % 251 for i in range(1000))
    frames = frames_of(body, 128)
    assert [len(f) for f in frames] == [128] * 7 + [104]
    assert all(isinstance(f.value, memoryview) and f.value.obj is body for f in frames)
    assert b"".join(f.value for f in frames) == body
    assert frames_of(b"", 128) == []


def test_a_view_frame_marshals_to_the_same_wire_bytes_as_a_copy() -> None:
    body = b"jwe:" + bytes(range(256)) * 3
    (view,) = frames_of(body, 4096)
    copy = pamqp.frame.marshal(type(view)(body), 7)
    assert pamqp.frame.marshal(view, 7) == copy


def test_aiormq_of_another_shape_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    def changed(self: Channel, body: bytes, size: int) -> list[object]:
        return []

    monkeypatch.setattr(Channel, "_split_body", changed)
    assert share_body_frames() is False
    assert Channel._split_body is changed


def test_sharing_replaces_the_split_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Channel, "_split_body", Channel._split_body)  # restored afterwards
    assert share_body_frames() is True
    assert share_body_frames() is True
    assert Channel._split_body is body_frames._split_body
