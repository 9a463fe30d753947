import io
import os
from pathlib import Path

import pytest

from dfscan.scanning.discover import BROKEN_LINK, discover, normalise_extensions, read_path_list


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def tree(tmp_path):
    for rel in ["b.mp4", "a.MOV", "notes.txt", "sub/c.mkv", "sub/deeper/d.WebM", "sub/e.avi.txt",
                ".hidden/h.mp4", "sub/.secret.mp4", "z.ts", "y.3gp"]:
        touch(tmp_path / rel)
    return tmp_path


def names(found, root):
    return [str(f.path.relative_to(root)) for f in found]


def test_recursive_sorted_case_insensitive_and_hidden_skipped(tree):
    found = discover([tree])
    assert names(found, tree) == ["a.MOV", "b.mp4", "sub/c.mkv", "sub/deeper/d.WebM", "y.3gp", "z.ts"]
    assert all(f.error is None for f in found)


def test_no_recursive_and_hidden(tree):
    assert names(discover([tree], recursive=False), tree) == ["a.MOV", "b.mp4", "y.3gp", "z.ts"]
    with_hidden = names(discover([tree], include_hidden=True), tree)
    assert ".hidden/h.mp4" in with_hidden and "sub/.secret.mp4" in with_hidden


def test_extension_list_replaces_default(tree):
    assert names(discover([tree], extensions=["MKV", ".webm"]), tree) == ["sub/c.mkv", "sub/deeper/d.WebM"]
    assert normalise_extensions(["mp4,.MOV", " avi "]) == {"mp4", "mov", "avi"}


def test_explicit_file_taken_whatever_its_extension_and_duplicates_removed(tree):
    found = discover([tree / "notes.txt", tree / "b.mp4", tree, tree / "b.mp4"])
    rel = names(found, tree)
    assert rel[0] == "notes.txt" and rel.count("b.mp4") == 1


def test_missing_path_is_reported_not_raised(tmp_path):
    (found,) = discover([tmp_path / "nope.mp4"])
    assert found.error == "no such file or folder"


def test_broken_link_and_symlink_loop_are_reported(tmp_path):
    touch(tmp_path / "v" / "ok.mp4")
    os.symlink(tmp_path / "gone.mp4", tmp_path / "v" / "broken.mp4")
    os.symlink(tmp_path / "v", tmp_path / "v" / "loop")  # points back at its own folder
    os.symlink("self.mp4", tmp_path / "v" / "self.mp4")  # a link to itself
    found = discover([tmp_path / "v"])
    by_name = {str(f.path.relative_to(tmp_path)): f.error for f in found}
    assert by_name["v/ok.mp4"] is None
    assert by_name["v/broken.mp4"] == BROKEN_LINK
    assert by_name["v/self.mp4"] == BROKEN_LINK
    assert "loop" in by_name["v/loop"]
    assert len(found) == 4


def test_unreadable_folder_is_reported_and_walk_continues(tree, monkeypatch):
    real_scandir = os.scandir

    def scandir(path):
        if Path(path).name == "deeper":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    found = discover([tree])
    errors = {str(f.path.relative_to(tree)): f.error for f in found if f.error}
    assert errors == {"sub/deeper": "cannot read folder: Permission denied"}
    assert "z.ts" in names(found, tree)


def test_path_lists_skip_blanks_and_comments_and_keep_names_whole():
    lines = ["a.mp4\n", "\n", "   \n", "# a comment\n", "  # an indented one\r\n", " spaced name .mp4 \r\n",
             "./#hash.mp4\n", "last.mp4"]
    assert read_path_list(lines) == ["a.mp4", " spaced name .mp4 ", "./#hash.mp4", "last.mp4"]


class Endless:
    """/dev/zero as a stream: every read returns as many NUL bytes as asked for, forever."""

    def __init__(self, byte=b"\0"):
        self.byte, self.asked = byte, 0

    def readline(self, size=-1):
        assert size > 0, "an unbounded read of an endless stream"
        self.asked += size
        return self.byte * size


def test_path_lists_are_read_within_bounds():
    from dfscan.scanning.discover import MAX_LIST_LINE, PathListError

    zero = Endless()
    with pytest.raises(PathListError, match="line 1: a NUL byte"):
        read_path_list(zero, "/dev/zero")
    assert zero.asked <= MAX_LIST_LINE + 3
    letters = Endless(b"a")
    with pytest.raises(PathListError, match=f"line 1: longer than {MAX_LIST_LINE} bytes"):
        read_path_list(letters)
    assert letters.asked <= MAX_LIST_LINE + 3
    with pytest.raises(PathListError, match="line 2: a NUL byte"):
        read_path_list(io.BytesIO(b"a.mp4\nfind\0print0\0"))
    exact = b"/" + b"d" * (MAX_LIST_LINE - 1)
    assert read_path_list(io.BytesIO(exact + b"\r\nnext.mp4")) == [exact.decode(), "next.mp4"]
    with pytest.raises(PathListError, match="line 1: longer"):
        read_path_list(io.BytesIO(exact + b"e\n"))


def test_path_lists_larger_than_any_queue_are_refused(monkeypatch):
    import dfscan.scanning.discover as discover_mod

    monkeypatch.setattr(discover_mod, "MAX_LIST_ENTRIES", 3)
    assert len(read_path_list(io.BytesIO(b"a\nb\nc\n# not a path\n\n"))) == 3
    with pytest.raises(discover_mod.PathListError, match="more than 3 paths"):
        read_path_list(io.BytesIO(b"a\nb\nc\nd\n"))
    monkeypatch.setattr(discover_mod, "MAX_LIST_BYTES", 100)
    with pytest.raises(discover_mod.PathListError, match="larger than"):
        read_path_list(io.BytesIO(b"# comment\n" * 20))


def test_path_lists_keep_undecodable_bytes_as_the_os_does():
    names = read_path_list(io.BytesIO(b"caf\xe9.mp4\n\xd0\xb2\xd0\xb8\xd0\xb4.mp4\n"))
    assert [os.fsencode(n) for n in names] == [b"caf\xe9.mp4", "вид.mp4".encode()]


def test_names_no_file_can_have_become_entries_with_a_reason(tmp_path):
    found = discover([tmp_path / ("n" * 300 + ".mp4"), "nul\0byte.mp4", tmp_path / ("d" * 300) / "x.mp4"])
    assert [f.error for f in found] == ["the name is too long for the file system (no file can have it)",
                                        "the name holds a NUL byte, which no file name can",
                                        "the name is too long for the file system (no file can have it)"]
