"""The native module's exceptions fit Python's hierarchy, so callers can catch them plainly."""

from amber import _native


def test_format_error_is_a_value_error():
    assert issubclass(_native.FormatError, ValueError)


def test_io_error_is_an_os_error():
    assert issubclass(_native.FileIOError, OSError)
