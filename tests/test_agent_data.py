"""The agent's sampling: deterministic, disjoint, refilled past corrupt files, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from device_agent import data
from device_agent.errors import DataProblem


def _folder(root: Path, cls: str, n: int, *, size: int = 24, prefix: str = "img") -> list[Path]:
    (root / cls).mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        p = root / cls / f"{prefix}{i:03d}.png"
        Image.fromarray(np.full((size, size, 3), i % 256, np.uint8)).save(p)
        out.append(p)
    return out


def _sample(root: Path, classes, train, test, seed=0):
    """Run the sampler; return (train paths, test paths, counts) per the decode calls."""
    listings = data.list_classes(str(root), classes)
    data.check_enough(listings, train, test)
    seen: list[str] = []

    def decode(path: str, size: int):
        seen.append(path)
        return data.decode_image(path, size)

    counts = data.SampleCounts(list(classes))
    picked: dict[str, list[str]] = {"train": [], "test": []}
    for s in data.iter_samples(listings, train=train, test=test, seed=seed, size=8,
                               counts=counts, decode=decode):
        picked[s.split].append(seen[-1])
        assert s.pixels.shape == (8, 8, 3) and s.pixels.dtype == np.float32
    return picked["train"], picked["test"], counts


def test_sampling_is_deterministic_and_disjoint(tmp_path):
    """Same seed → same images; train and test never overlap; another seed picks others."""
    _folder(tmp_path, "a", 20)
    _folder(tmp_path, "b", 20)
    tr1, te1, c1 = _sample(tmp_path, ["a", "b"], 5, 7, seed=1)
    tr2, te2, _ = _sample(tmp_path, ["a", "b"], 5, 7, seed=1)
    tr3, te3, _ = _sample(tmp_path, ["a", "b"], 5, 7, seed=2)
    assert (tr1, te1) == (tr2, te2)
    assert not set(tr1) & set(te1)
    assert (tr1, te1) != (tr3, te3)
    assert c1.as_dict() == {"train": 10, "test": 14, "skipped_corrupt": 0,
                            "skipped_too_large": 0, "skipped_unsupported": 0,
                            "per_class_train": {"a": 5, "b": 5},
                            "per_class_test": {"a": 7, "b": 7}}


def test_sampling_follows_sorted_listing_and_seeded_permutation(tmp_path):
    """The order is the seeded permutation of the name-sorted listing, per class index."""
    files = _folder(tmp_path, "a", 9)
    _folder(tmp_path, "b", 9)
    train, test, _ = _sample(tmp_path, ["a", "b"], 3, 2, seed=5)
    order = data.sample_order(9, 5, 0)
    expect = [str(files[i]) for i in order[:5]]
    assert train[:3] + test[:2] == expect


def test_too_few_images_is_an_error_with_the_count(tmp_path):
    """A class with fewer files than train + test is refused, saying how many it has."""
    _folder(tmp_path, "a", 10)
    _folder(tmp_path, "b", 3)
    listings = data.list_classes(str(tmp_path), ["a", "b"])
    with pytest.raises(DataProblem, match=r"class 'b' has 3 images; 5 needed per class "
                                          r"\(2 train \+ 3 test\)") as e:
        data.check_enough(listings, 2, 3)
    assert e.value.code == "too_few_images"


def test_corrupt_files_are_skipped_counted_and_refilled(tmp_path):
    """Broken and non-image files are skipped and counted; later files take their place."""
    good = _folder(tmp_path, "a", 6)
    _folder(tmp_path, "b", 6)
    bad = [tmp_path / "a" / "broken1.jpg", tmp_path / "a" / "broken2.png",
           tmp_path / "a" / "notes.txt"]
    bad[0].write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    bad[1].write_bytes(good[1].read_bytes()[:60])  # a truncated PNG
    bad[2].write_text("hello")
    (tmp_path / "a" / ".nomedia").write_text("")  # hidden: not even a candidate
    train, test, counts = _sample(tmp_path, ["a", "b"], 3, 3, seed=0)
    a_used = {p for p in train + test if "/a/" in p}
    assert a_used == {str(p) for p in good}  # all 6 good files were needed and used
    listing = data.list_classes(str(tmp_path), ["a"])[0]
    order = [listing.files[i] for i in data.sample_order(len(listing.files), 0, 0)]
    last_good = max(order.index(str(p)) for p in good)
    expected_bad = sum(1 for p in order[:last_good] if p in {str(b) for b in bad})
    assert expected_bad >= 1  # this seed puts broken files before the last good one
    assert counts.corrupt == [expected_bad, 0]
    assert counts.as_dict()["skipped_corrupt"] == expected_bad


def test_too_many_corrupt_files_is_an_error_without_names(tmp_path):
    """When broken files leave too few images the error counts them and names no file."""
    _folder(tmp_path, "a", 3, prefix="secretname")
    _folder(tmp_path, "b", 6)
    for i in range(3):
        (tmp_path / "a" / f"secretbroken{i}.jpg").write_bytes(b"junk")
    with pytest.raises(DataProblem) as e:
        _sample(tmp_path, ["a", "b"], 3, 3)
    msg = e.value.message
    assert "class 'a': 3 of its 6 files could not be decoded, leaving 3 images; 6 needed" in msg
    assert "secret" not in msg and str(tmp_path) not in msg


@pytest.mark.parametrize("setup, code, needle", [
    (lambda r: None, "data_missing", "does not exist"),
    (lambda r: (r / "a").mkdir(parents=True), "data_missing", "no class folder 'b'"),
    (lambda r: [(r / c).mkdir(parents=True) for c in "ab"] and (r / "a" / ".hidden").touch(),
     "data_empty", "'a'"),
])
def test_missing_root_class_or_empty_class(tmp_path, setup, code, needle):
    """A missing data folder, class folder, or an empty class is one clear error, no path."""
    root = tmp_path / "photos"
    setup(root)
    with pytest.raises(DataProblem) as e:
        data.list_classes(str(root), ["a", "b"])
    assert e.value.code == code and needle in e.value.message
    assert str(tmp_path) not in e.value.message


def test_decode_returns_none_for_non_images(tmp_path):
    """decode_image never raises: a non-image gives None."""
    p = tmp_path / "x.jpg"
    p.write_text("not an image")
    assert data.decode_image(str(p), 16) is None
    assert data.decode_image(str(tmp_path / "missing.jpg"), 16) is None
