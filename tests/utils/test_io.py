"""alpseg.utils.io: whole-file writes that are atomic and leave files as readable as ``open()`` would."""
import json
import os
import stat

import pytest

from alpseg.utils.io import atomic_open, atomic_write, atomic_write_json


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_writes_text_bytes_and_json_into_new_folders(tmp_path):
    text, data, obj = tmp_path / "a" / "t.txt", tmp_path / "b" / "d.bin", tmp_path / "c" / "o.json"
    atomic_write(str(text), "één\nzwei\r\n")
    atomic_write(str(data), b"\x00\xff\n")
    atomic_write_json(str(obj), {"k": [1, 2.5, "x"]}, indent=1)
    assert text.read_bytes() == "één\nzwei\r\n".encode("utf-8")  # UTF-8, newlines untranslated
    assert data.read_bytes() == b"\x00\xff\n"
    assert obj.read_text(encoding="utf-8") == '{\n "k": [\n  1,\n  2.5,\n  "x"\n ]\n}'
    assert json.loads(obj.read_text(encoding="utf-8")) == {"k": [1, 2.5, "x"]}
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["d.bin", "o.json", "t.txt"]


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_permissions_follow_the_umask_like_open(tmp_path, umask):
    old = os.umask(umask)
    try:
        atomic_write(str(tmp_path / "atomic.txt"), "x")
        with open(tmp_path / "plain.txt", "w") as f:
            f.write("x")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "atomic.txt") == 0o666 & ~umask == _mode(tmp_path / "plain.txt")


def test_an_error_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "results.json"
    atomic_write(str(path), "old")
    with pytest.raises(KeyError):
        with atomic_open(str(path)) as f:
            f.write("half of the new")
            raise KeyError("killed mid-write")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["results.json"]


def test_replaces_an_existing_file_and_rejects_non_whole_file_modes(tmp_path):
    path = tmp_path / "x.txt"
    atomic_write(str(path), "first, longer content")
    atomic_write(str(path), "second")
    assert path.read_text() == "second"
    for mode in ("a", "r", "w+", "ab"):
        with pytest.raises(ValueError, match="mode must be"):
            with atomic_open(str(path), mode):
                pass
    assert path.read_text() == "second"
