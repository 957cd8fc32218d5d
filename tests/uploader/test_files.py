"""Which files tuscam-upload takes, their types and hashes, and how sizes are written."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from uploader.files import PathProblem, collect, filetype_of, parse_size, sha256_file


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4194304", 4194304),
        ("512K", 512 * 1024),
        ("512k", 512 * 1024),
        ("8M", 8 << 20),
        ("8MiB", 8 << 20),
        ("8mb", 8 << 20),
        ("1G", 1 << 30),
        ("1.5M", 3 << 19),
        (" 64 K ", 64 << 10),
        ("100B", 100),
    ],
)
def test_sizes_are_read_in_binary_units(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "0", "0K", "-1", "+5", "abc", "5X", "1.5.5", "5ib", "٥M"])
def test_a_size_that_is_not_one_is_refused_with_a_hint(text: str) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_size(text)


def _touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "shoot"
    for name in [
        "a.jpg",
        "B.JPEG",
        "c.png",
        "notes.txt",
        ".hidden.jpg",
        ".thumbs/x.jpg",
        "day2/e.webp",
        "day2/deeper/f.heic",
        "day2/g.gif",
    ]:
        _touch(root / name)
    return root


def _names(files: list, root: Path) -> list[str]:
    return [str(f.path.relative_to(root.resolve())) for f in files]


def test_folders_are_walked_for_images_skipping_hidden_entries(tree: Path) -> None:
    assert _names(collect([tree]), tree) == [
        "B.JPEG",
        "a.jpg",
        "c.png",
        "day2/deeper/f.heic",
        "day2/e.webp",
    ]


def test_include_overrides_the_image_patterns(tree: Path) -> None:
    assert _names(collect([tree], ["*.txt", "*.GIF"]), tree) == ["day2/g.gif", "notes.txt"]


def test_a_file_named_explicitly_is_taken_and_each_file_only_once(tree: Path) -> None:
    files = collect([tree / "notes.txt", tree, tree / "a.jpg"])
    names = _names(files, tree)
    assert "notes.txt" in names
    assert names.count("a.jpg") == 1
    assert all(f.path.is_absolute() for f in files)


def test_a_missing_path_is_a_problem_not_an_empty_list(tmp_path: Path) -> None:
    with pytest.raises(PathProblem, match="no such file"):
        collect([tmp_path / "nope"])


def test_a_symlink_loop_does_not_trap_the_walk(tree: Path) -> None:
    (tree / "day2" / "loop").symlink_to(tree, target_is_directory=True)
    assert len(collect([tree])) == 5


def test_sizes_and_types_are_known(tree: Path) -> None:
    _touch(tree / "a.jpg", b"12345")
    file = next(f for f in collect([tree]) if f.path.name == "a.jpg")
    assert file.size == 5
    assert file.filetype == "image/jpeg"
    assert filetype_of(Path("x.HEIC")) == "image/heic"
    assert filetype_of(Path("x.webp")) == "image/webp"
    assert filetype_of(Path("x.png")) == "image/png"


def test_sha256_is_streamed_over_the_whole_file(tmp_path: Path) -> None:
    data = bytes(range(256)) * 9000  # > one read block
    path = _touch(tmp_path / "big.bin", data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()
