"""One photo → the model's input: RGB float32 [S, S, 3] in 0…255, or the reason it is skipped.

Two ways to decode, chosen by the job's `data.decode`:
- `exact`: Keras's `load_img(path, target_size=(S, S))`: the whole image is decoded, converted
  to RGB and resized (no crop, aspect ratio not kept) with bilinear filtering. The parity
  tests against Keras use it.
- `fast`: a JPEG is decoded at a reduced size by the DCT itself (libjpeg's scaling by 1/2,
  1/4 or 1/8, Pillow's draft mode), never below twice the model's input on either side, then
  resized the same way. A 12 MP camera photo costs a third of the time and 1/64 of the
  memory; the pixels differ from `exact` by about one grey level on average.

`data.orientation: exif` turns the result the way the photo's EXIF Orientation tag says
(phones store portrait shots sideways with a tag); `ignore` leaves the stored pixels as they
are, as Keras does. The turn is applied to the S×S result: turning and resizing to a square
commute, and turning 12 MP would cost more than the decode.

Before any pixel is decoded, the header says the format and the size: only JPEG and PNG are
decoded (HEIC/HEIF, the default on many phones, and everything else Pillow might open are
`unsupported`), and an image of more than `max_pixels` pixels is `too_large`. A file that
claims to be an image and does not decode is `corrupt`.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable

import numpy as np
from PIL import Image

FAST, EXACT = "fast", "exact"
DECODE_MODES = (FAST, EXACT)
EXIF, IGNORE = "exif", "ignore"
ORIENTATIONS = (EXIF, IGNORE)
DEFAULT_MAX_PIXELS = 50_000_000  # a 50 MP sensor's full-resolution photo (8160×6120)

CORRUPT, UNSUPPORTED, TOO_LARGE = "corrupt", "unsupported", "too_large"
SKIPS = (CORRUPT, UNSUPPORTED, TOO_LARGE)
SUPPORTED_FORMATS = ("JPEG", "PNG")
# ISO base media brands of HEIF/HEIC/AVIF stills (bytes 8…12 of the file, after "ftyp").
_HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1",
                b"avif", b"avis")
_ORIENT_TAG = 0x0112
_TURNS = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
          4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
          6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
          8: Image.Transpose.ROTATE_90}
BYTES_PER_PIXEL = 4  # Pillow keeps RGB as 4 bytes a pixel


def is_heif(head: bytes) -> bool:
    """True for the first bytes of a HEIF-family still image (HEIC, AVIF)."""
    return len(head) >= 12 and head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS


def draft_size(size: int) -> tuple[int, int]:
    """The smallest size a JPEG may be DCT-scaled to: twice the model's input on each side,
    so the bilinear resize that follows still averages over several source pixels."""
    return 2 * size, 2 * size


def decoded_bytes(width: int, height: int, size: int) -> int:
    """What decoding an image of width × height pixels (after any DCT scaling) holds in
    memory at its peak, estimated: the decoded image, one converted copy, the result."""
    return 2 * BYTES_PER_PIXEL * width * height + 4 * 3 * size * size


def camera_bytes(size: int, mode: str, width: int = 4000, height: int = 3000) -> int:
    """decoded_bytes of a typical camera JPEG (12 MP unless told) in the given mode."""
    if mode == FAST:
        scale = min(width // draft_size(size)[0], height // draft_size(size)[1])
        s = next(s for s in (8, 4, 2, 1) if scale >= s)
        width, height = -(-width // s), -(-height // s)
    return decoded_bytes(width, height, size)


def orientation(im: Image.Image) -> int:
    """The EXIF Orientation tag (1…8) of an opened image; 1 when absent or unreadable."""
    try:
        value = im.getexif().get(_ORIENT_TAG, 1)
    except Exception:  # a broken EXIF block does not make the pixels unusable
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def decode_photo(path: str, size: int, *, mode: str = FAST, orient: str = EXIF,
                 max_pixels: int = DEFAULT_MAX_PIXELS,
                 reserve: Callable[[int], contextlib.AbstractContextManager[object]] | None = None,
                 ) -> np.ndarray | str:
    """RGB float32 [size, size, 3] in 0…255, or one of SKIPS. Never raises.

    `reserve(n)` is held while the pixels are decoded, with n the bytes the decode will
    hold at its peak (from the header), so parallel decodes stay within a memory budget.
    """
    try:
        with open(path, "rb") as f:
            if is_heif(f.read(16)):
                return UNSUPPORTED
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's large-image and EXIF warnings
            with Image.open(path) as im:
                if im.format not in SUPPORTED_FORMATS:
                    return UNSUPPORTED
                if im.width * im.height > max_pixels:
                    return TOO_LARGE
                if mode == FAST and im.format == "JPEG":
                    im.draft("RGB", draft_size(size))
                need = decoded_bytes(im.width, im.height, size)
                with reserve(need) if reserve else contextlib.nullcontext():
                    rgb = im if im.mode == "RGB" else im.convert("RGB")
                    if rgb.size != (size, size):
                        rgb = rgb.resize((size, size), Image.BILINEAR)
                turn = _TURNS.get(orientation(im)) if orient == EXIF else None
                if turn is not None:
                    rgb = rgb.transpose(turn)
                return np.asarray(rgb, dtype=np.float32)
    except Image.DecompressionBombError:  # Pillow's own ceiling, far above max_pixels
        return TOO_LARGE
    except Exception:  # any failure of a file to decode means: skip it and count it
        return CORRUPT
