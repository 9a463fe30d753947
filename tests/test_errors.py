"""One-line messages from exceptions: errors.first_line, and the helpers that know a library's messages."""
from dfscan.scanning.distributed import _ray_message
from dfscan.common.errors import UNREADABLE, VideoError, file_reason, first_line


def test_first_line_is_the_first_line_that_says_something():
    assert first_line(ValueError("\n  \n  the reason  \nmore detail")) == "the reason"
    assert first_line(ValueError("Stack trace:\nFile x.cc\nthe reason"), skip=("Stack", "File")) == "the reason"
    assert first_line(KeyError()) == "KeyError" and first_line(ValueError("File a"), skip=("File",)) == "ValueError"
    assert first_line(ValueError("abcdef"), 3) == "abc"


def test_a_file_that_cannot_be_read_says_so_without_its_path():
    denied = PermissionError(13, "Permission denied", "/secret/source.mp4")
    assert file_reason(denied) == f"{UNREADABLE}: Permission denied"
    assert file_reason(VideoError("empty file (0 bytes)")) == "empty file (0 bytes)"


def test_a_ray_error_gives_its_cause_not_its_traceback():
    exc = RuntimeError("The actor died unexpectedly before finishing this task.\n"
                       "Traceback (most recent call last):\n  File \"worker.py\", line 3, in load\n"
                       "dfscan.common.errors.ModelError: cannot load the model m.keras: bad zip\n")
    assert _ray_message(exc) == "ModelError: cannot load the model m.keras: bad zip"
    assert _ray_message(ConnectionError("nothing answers at h:1\n")) == "nothing answers at h:1"
