"""Photo decoding on the device: upright by EXIF, fast close to exact, skips by reason, and
parallel decoding that samples what one thread samples, within its memory budget."""

from __future__ import annotations

import struct
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from device_agent import data, decode, decode_pool
from device_agent.decode import CORRUPT, EXACT, EXIF, FAST, IGNORE, TOO_LARGE, UNSUPPORTED

SIZE = 32
# Stored pixels = upright.transpose(_STORE[tag]) is what a camera writes with that tag.
_STORE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
          4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
          6: Image.Transpose.ROTATE_90, 7: Image.Transpose.TRANSVERSE,
          8: Image.Transpose.ROTATE_270}


def _upright(w: int = 120, h: int = 90) -> Image.Image:
    """A scene no turn or flip maps onto itself: red top band, blue left column, noise."""
    rng = np.random.default_rng(1)
    a = (rng.random((h, w, 3)) * 60).astype(np.uint8)
    a[: h // 4, :, 0] = 250
    a[:, : w // 5, 2] = 250
    return Image.fromarray(a)


def _save_tagged(img: Image.Image, path: Path, tag: int, **kw) -> Path:
    exif = Image.Exif()
    exif[0x0112] = tag
    img.transpose(_STORE[tag]).save(path, exif=exif.tobytes(), **kw)
    return path


@pytest.mark.parametrize("tag", sorted(_STORE))
@pytest.mark.parametrize("mode", [FAST, EXACT])
def test_exif_rotated_photo_decodes_upright(tmp_path, tag, mode):
    """A photo stored sideways/flipped with its EXIF tag decodes as the upright scene;
    with `ignore` it stays as stored (what the model saw before)."""
    scene = _upright()
    want = decode.decode_photo(str(_save(scene, tmp_path / "up.png")), SIZE, mode=mode)
    path = _save_tagged(scene, tmp_path / f"t{tag}.png", tag)
    got = decode.decode_photo(str(path), SIZE, mode=mode, orient=EXIF)
    raw = decode.decode_photo(str(path), SIZE, mode=mode, orient=IGNORE)
    assert isinstance(got, np.ndarray) and isinstance(raw, np.ndarray)
    assert np.abs(got - want).max() <= 1.0  # resize and turn commute up to rounding
    assert np.abs(raw - want).mean() > 20


def _save(img: Image.Image, path: Path, **kw) -> Path:
    img.save(path, **kw)
    return path


def test_fast_equals_exact_on_small_photos_and_stays_close_on_large(tmp_path):
    """A photo too small for DCT scaling decodes identically; a 12 MP-like one within a
    grey level or two on average."""
    small = _save(_upright(330, 210), tmp_path / "small.jpg", quality=90)
    a = decode.decode_photo(str(small), 96, mode=FAST)
    b = decode.decode_photo(str(small), 96, mode=EXACT)
    np.testing.assert_array_equal(a, b)
    big = _upright(120, 90).resize((2400, 1800), Image.BILINEAR)
    path = _save(big, tmp_path / "big.jpg", quality=92)
    a = decode.decode_photo(str(path), 96, mode=FAST)
    b = decode.decode_photo(str(path), 96, mode=EXACT)
    diff = np.abs(np.asarray(a) - np.asarray(b))
    assert diff.mean() < 2.0 and np.percentile(diff, 99) < 12


def test_exact_without_orientation_is_decode_image(tmp_path):
    """data.decode_image (the parity tests' path) is `exact` with orientation ignored."""
    path = _save_tagged(_upright(), tmp_path / "t6.jpg", 6, quality=90)
    np.testing.assert_array_equal(
        data.decode_image(str(path), SIZE),
        decode.decode_photo(str(path), SIZE, mode=EXACT, orient=IGNORE))


def _png_header_only(path: Path, w: int, h: int) -> Path:
    """A PNG whose header claims w×h and which holds no pixel data at all."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body)))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b""))
    return path


def test_too_large_is_decided_from_the_header(tmp_path):
    """Over max_pixels is `too_large` without decoding (the file has no pixels to decode);
    under it, the same header-only file is `corrupt`; Pillow's own ceiling is too large too."""
    p = _png_header_only(tmp_path / "huge.png", 9000, 9000)
    assert decode.decode_photo(str(p), SIZE, max_pixels=50_000_000) == TOO_LARGE
    assert decode.decode_photo(str(p), SIZE, max_pixels=90_000_000) == CORRUPT
    bomb = _png_header_only(tmp_path / "bomb.png", 60_000, 60_000)
    assert decode.decode_photo(str(bomb), SIZE, max_pixels=10**10) == TOO_LARGE
    ok = _save(_upright(), tmp_path / "ok.jpg")
    assert decode.decode_photo(str(ok), SIZE, max_pixels=120 * 90) is not None
    assert decode.decode_photo(str(ok), SIZE, max_pixels=120 * 90 - 1) == TOO_LARGE


def _heic(path: Path) -> Path:
    path.write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(4000))
    return path


def test_heic_and_other_formats_are_unsupported_and_junk_is_corrupt(tmp_path):
    """HEIC/AVIF (by their ftyp brand, whatever the name), GIF, WebP, BMP and TIFF are
    `unsupported`; text, truncated JPEGs and missing files are `corrupt`."""
    img = _upright()
    unsupported = [_heic(tmp_path / "IMG_1.HEIC"), _heic(tmp_path / "disguised.jpg")]
    avif = tmp_path / "a.avif"
    avif.write_bytes(b"\x00\x00\x00\x1cftypavif" + bytes(100))
    unsupported.append(avif)
    for ext in ("gif", "webp", "bmp", "tif"):
        unsupported.append(_save(img, tmp_path / f"x.{ext}"))
    for p in unsupported:
        assert decode.decode_photo(str(p), SIZE) == UNSUPPORTED, p.name
    good = _save(img, tmp_path / "good.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(good[: len(good) // 3])
    (tmp_path / "notes.txt").write_text("hello")
    for name in ("cut.jpg", "notes.txt", "missing.jpg"):
        assert decode.decode_photo(str(tmp_path / name), SIZE) == CORRUPT, name


def test_sampling_counts_each_skip_reason_and_refills(tmp_path):
    """Skipped files are counted by reason and later files take their place; the error for
    too few images names the reasons and no file."""
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for i in range(4):
            _save(_upright(), tmp_path / cls / f"p{i}.jpg")
    _heic(tmp_path / "a" / "IMG_9.heic")
    _png_header_only(tmp_path / "a" / "pano.png", 9000, 9000)
    (tmp_path / "a" / "junk.jpg").write_bytes(b"\xff\xd8\xff junk")
    listings = data.list_classes(str(tmp_path), ["a", "b"])
    counts = data.SampleCounts(["a", "b"])
    pool = decode_pool.photo_pool(SIZE, mode=FAST, orient=EXIF, max_pixels=50_000_000)
    with pool:
        got = list(data.iter_samples(listings, train=2, test=2, seed=0, size=SIZE,
                                     counts=counts, pool=pool))
        with pytest.raises(data.DataProblem) as e:
            list(data.iter_samples(listings, train=4, test=3, seed=0, size=SIZE,
                                   counts=data.SampleCounts(["a", "b"]), pool=pool))
    assert len(got) == 8
    c = counts.as_dict()
    assert c["train"] == 4 and c["test"] == 4
    # Class a's order decides how many bad files come before its 4th good one.
    order = [Path(listings[0].files[i]).name for i in data.sample_order(7, 0, 0)]
    seen = order[:max(order.index(f"p{i}.jpg") for i in range(4)) + 1]
    assert (c["skipped_unsupported"], c["skipped_too_large"], c["skipped_corrupt"]) == (
        seen.count("IMG_9.heic"), seen.count("pano.png"), seen.count("junk.jpg"))
    assert len(seen) > 4  # this seed reads at least one bad file
    msg = e.value.message
    assert msg.startswith("class 'a': 3 of its 7 files were skipped (1 corrupt, 1 too large, "
                          "1 in unsupported formats), leaving 4 images; 7 needed")
    assert "IMG" not in msg and str(tmp_path) not in msg


def test_parallel_decoding_samples_what_one_thread_samples(tmp_path):
    """Decoding ahead on 3 workers yields the same images, splits and order as inline."""
    rng = np.random.default_rng(0)
    for cls in ("a", "b", "c"):
        (tmp_path / cls).mkdir()
        for i in range(9):
            a = (rng.random((40, 50, 3)) * 255).astype(np.uint8)
            _save(Image.fromarray(a), tmp_path / cls / f"{i}.png")
        (tmp_path / cls / "bad.jpg").write_bytes(b"junk")
    listings = data.list_classes(str(tmp_path), ["a", "b", "c"])

    def run(workers: int) -> tuple[list, dict]:
        counts = data.SampleCounts(["a", "b", "c"])
        with decode_pool.photo_pool(SIZE, mode=FAST, orient=EXIF, max_pixels=10**8,
                                    workers=workers) as pool:
            out = [(s.split, s.label, s.pixels) for s in data.iter_samples(
                listings, train=3, test=4, seed=5, size=SIZE, counts=counts, pool=pool)]
        return out, counts.as_dict()

    one, c1 = run(1)
    many, c3 = run(3)
    assert c1 == c3 and len(one) == 21
    for (s1, l1, p1), (s3, l3, p3) in zip(one, many, strict=True):
        assert (s1, l1) == (s3, l3)
        np.testing.assert_array_equal(p1, p3)


def test_memory_gate_holds_decodes_to_the_budget():
    """A decode that does not fit waits until another finishes; one alone always runs."""
    gate = decode_pool.MemoryGate(10)
    first_in, release, second_in = threading.Event(), threading.Event(), threading.Event()

    def first() -> None:
        with gate.hold(6):
            first_in.set()
            release.wait(30)

    def second() -> None:
        with gate.hold(6):
            second_in.set()

    t1 = threading.Thread(target=first)
    t1.start()
    assert first_in.wait(30)
    t2 = threading.Thread(target=second)
    t2.start()
    assert not second_in.wait(0.3)  # 6 + 6 > 10: it must wait, however slow the machine
    release.set()
    assert second_in.wait(30)
    t1.join(30)
    t2.join(30)
    with gate.hold(50):  # larger than the budget, but alone: runs
        assert gate.used == 50
    assert gate.used == 0


def test_worker_count_follows_cores_and_budget():
    """fast: one worker per core; exact: as many 12 MP decodes as the budget holds."""
    assert decode_pool.worker_count(160, FAST, cpus=8) == 8
    assert decode_pool.worker_count(160, FAST, cpus=2) == 2
    assert decode_pool.worker_count(160, EXACT, cpus=8, budget=200 * 2**20) == 2
    assert decode_pool.worker_count(160, EXACT, cpus=8, budget=10 * 2**20) == 1
    assert decode.camera_bytes(160, FAST) * 40 < decode.camera_bytes(160, EXACT)


def test_spec_default_pixel_budget_is_the_agents():
    """The spec's data.max_pixels default is the agent's own default."""
    spec = pytest.importorskip("orchestrator.spec")
    assert spec.DataSpec(source="device:/x").max_pixels == decode.DEFAULT_MAX_PIXELS
