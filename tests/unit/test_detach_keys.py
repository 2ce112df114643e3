"""The detach key matcher shared by the CLI's attach and the API's hijacked streams."""

from dockyard.engine.stream import DetachMatcher


def test_sequence_across_reads_detaches_and_keeps_what_came_before():
    m = DetachMatcher(b"\x10\x11")
    assert m.feed(b"ab\x10") == (b"ab", False)
    assert m.feed(b"\x11zz") == (b"", True)


def test_a_broken_off_prefix_is_passed_on_as_typed():
    m = DetachMatcher(b"\x10\x11")
    assert m.feed(b"\x10") == (b"", False)
    assert m.feed(b"x") == (b"\x10x", False)
    assert m.feed(b"\x10\x10\x11") == (b"\x10", True)
