"""One image file as the model's data: C channels at the file's bit depth, from any format users have.

Every path that reads files (``data=imagefolder``, ``scripts/make_shards.py`` + ``data=shards``,
``scripts/embed.py``) decodes through :func:`read_image`, which dispatches on the file name:

- ``.npy``: a NumPy array (``numpy.save``);
- ``.tif`` / ``.tiff``: tifffile (multi-band, multi-page, 8 or 16 bits per sample);
- ``.dcm``: DICOM, by pydicom (``pip install selfsup[dicom]``); the Modality LUT (rescale slope
  and intercept) is applied, then optionally a window (:class:`ImageFormat`);
- anything else (JPEG, PNG, BMP, WEBP, PPM/PGM): PIL. 16-bit grey PNGs keep their 16 bits.

An array of two axes is one channel; of three, the axis whose length is ``channels``: last
``(H, W, C)`` (channels last, as image libraries write them; the rule when both ends match) or
first ``(C, H, W)`` (a multi-page TIFF, a stack of bands). Values are kept in the file's dtype:
``bit_depth=8`` reads uint8 (0..255), ``bit_depth=16`` uint16 (0..65535; 10-, 12- and 14-bit
data stored in 16 bits is read as it is, and ``data.normalize=auto`` takes its range into account).
The view maker divides by ``2**bit_depth - 1`` to reach [0, 1].

A file that disagrees with the declared format (another channel count or dtype, an axis layout
that fits neither rule) raises :class:`ImageMismatch`, a ``ValueError`` that names what the file
has and what was expected; the data sets treat it as an unreadable file (``data.on_bad_image``).

For the 8-bit grey and RGB data every data option had before (``bit_depth=8``, 1 or 3
channels), PIL formats are read exactly as before: converted to grey or RGB by PIL (an RGBA PNG
to RGB, a grey JPEG to RGB), resized by PIL.

Memory: an image takes ``C x H x W x bit_depth / 8`` bytes, in memory and per batch row before
the views: a 13-band 16-bit tile is 26 / 3 = 8.7 times an 8-bit RGB one of the same side.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

BitDepth = Literal[8, 16]
DTYPES: dict[int, type[np.unsignedinteger]] = {8: np.uint8, 16: np.uint16}
ARRAY_SUFFIXES = (".npy", ".tif", ".tiff", ".dcm")
PIL_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".pgm")
IMAGE_EXTENSIONS = PIL_SUFFIXES + ARRAY_SUFFIXES
# PIL modes of more than 8 bits per channel: 16-bit grey (I;16*), 32-bit integer (I), float (F).
HIGH_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


class ImageMismatch(ValueError):
    """A file that decodes but disagrees with ``data.channels`` / ``data.bit_depth``."""


@dataclass(frozen=True)
class ImageFormat:
    """What the data's files are declared to hold.

    Attributes:
        channels: C, the channels of every image (``data.channels``).
        bit_depth: 8 (uint8) or 16 (uint16) bits per value (``data.bit_depth``).
        dicom_window: DICOM only: ``(center, width)`` of the window of modality values (after the
            rescale slope and intercept, e.g. Hounsfield units) mapped linearly onto the bit
            depth's range, values outside it clipped; None: the modality values themselves, which
            must be integers within that range (an MR image usually is; a CT image, in HU, is not).
    """

    channels: int = 3
    bit_depth: int = 8
    dicom_window: Sequence[float] | None = None  # stored as a (center, width) tuple of floats

    def __post_init__(self) -> None:
        if self.bit_depth not in DTYPES:
            raise ValueError(f"data.bit_depth={self.bit_depth}; expected 8 or 16")
        if self.channels < 1:
            raise ValueError(f"data.channels={self.channels}; expected 1 or more")
        if self.dicom_window is not None:
            center, width = (float(v) for v in self.dicom_window)
            if width <= 0:
                raise ValueError(f"data.dicom_window={[center, width]}: expected [center, width] with width > 0")
            object.__setattr__(self, "dicom_window", (center, width))

    @property
    def classic(self) -> bool:
        """8-bit grey or RGB: PIL formats are converted by PIL, as every data option always read them."""
        return self.bit_depth == 8 and self.channels in (1, 3)

    @property
    def max_value(self) -> int:
        """The largest value of the bit depth: 255 or 65535."""
        return 2**self.bit_depth - 1


def read_image(source: str | Path | bytes, name: str, fmt: ImageFormat) -> Image.Image | np.ndarray:
    """Decode one file: a PIL image already converted to grey or RGB (``fmt.classic`` data in a PIL
    format), else a (C, H, W) array of ``fmt``'s dtype.

    Args:
        source: a path, or the file's bytes (a shard keeps the encoded file).
        name: the file's name (its suffix picks the decoder) as errors print it.
        fmt: the declared channels and bit depth.

    Raises:
        ImageMismatch: the file has other channels or another bit depth.
        OSError, ValueError, SyntaxError, EOFError: the file cannot be decoded (as PIL raises them).
    """
    suffix = Path(name).suffix.lower()
    if suffix == ".npy":
        return _layout(np.load(_file(source), allow_pickle=False), fmt)
    if suffix in (".tif", ".tiff"):
        if fmt.classic:  # 8-bit grey and RGB TIFFs by PIL, as they always were read
            try:
                return _pil(source, fmt)
            except (OSError, SyntaxError, ValueError, EOFError) as e:
                if isinstance(e, ImageMismatch):
                    raise
        import tifffile

        try:
            arr = tifffile.imread(_file(source))
        except tifffile.TiffFileError as e:
            raise OSError(str(e)) from e
        return _layout(arr, fmt)
    if suffix == ".dcm":
        return _layout(_dicom(_file(source), fmt), fmt)
    return _pil(source, fmt)


def check_image(source: str | Path | bytes, name: str, fmt: ImageFormat) -> None:
    """:class:`ImageMismatch` where the file disagrees with ``fmt``, at the least cost: 8-bit grey and
    RGB data in a PIL format by the header's mode alone (PIL converts the rest when it is read),
    anything else decoded (:func:`read_image`)."""
    if fmt.classic and not name.lower().endswith(ARRAY_SUFFIXES):
        with Image.open(_file(source)) as img:
            _refuse_more_than_8_bits(img.mode)
        return
    read_image(source, name, fmt)


def _refuse_more_than_8_bits(mode: str) -> None:
    if mode in HIGH_BIT_MODES:
        raise ImageMismatch(
            f"has more than 8 bits per channel (PIL mode {mode}) and data.bit_depth=8: "
            "set data.bit_depth=16 to read its 16 bits"
        )


def _file(source: str | Path | bytes) -> str | Path | io.BytesIO:
    return io.BytesIO(source) if isinstance(source, bytes) else source


def _pil(source: str | Path | bytes, fmt: ImageFormat) -> Image.Image | np.ndarray:
    """A file PIL decodes: converted to grey or RGB (``fmt.classic``), else an array of its bands."""
    with Image.open(_file(source)) as img:
        if fmt.classic:
            _refuse_more_than_8_bits(img.mode)
            return img.convert("L" if fmt.channels == 1 else "RGB")
        if fmt.bit_depth == 16:
            if img.mode not in HIGH_BIT_MODES[:5]:
                raise ImageMismatch(
                    f"has 8 bits per channel (PIL mode {img.mode}) and data.bit_depth=16 (PIL reads 16 bits "
                    "from grey images only: save colour or multi-band 16-bit images as TIFF or .npy)"
                )
            arr = np.asarray(img)
            if arr.min() < 0 or arr.max() > 65535:
                raise ImageMismatch(f"has values {arr.min()}..{arr.max()}, outside 16 bits (0..65535)")
            return _layout(arr.astype(np.uint16), fmt)
        _refuse_more_than_8_bits(img.mode)
        return _layout(np.asarray(img), fmt)


def _dicom(data: io.BytesIO | str | Path, fmt: ImageFormat) -> np.ndarray:
    """A DICOM file's pixels through its Modality LUT, windowed by ``fmt.dicom_window``."""
    from selfsup.optional import require_flag

    require_flag("reading .dcm files")
    import pydicom
    from pydicom.pixels import apply_modality_lut

    try:
        ds = pydicom.dcmread(data)
    except pydicom.errors.InvalidDicomError as e:
        raise OSError(f"not a DICOM file ({' '.join(str(e).split())[:120]})") from e
    try:
        values = np.asarray(apply_modality_lut(ds.pixel_array, ds), dtype=np.float64)
    except (RuntimeError, NotImplementedError, AttributeError) as e:  # no pixel data, a codec pydicom lacks
        raise OSError(f"pydicom cannot decode its pixels: {' '.join(str(e).split())[:200]}") from e
    top = fmt.max_value
    if fmt.dicom_window is not None:
        center, width = fmt.dicom_window
        scaled = (values - (center - width / 2)) / width * top
        return np.clip(np.round(scaled), 0, top).astype(DTYPES[fmt.bit_depth])
    lo, hi = values.min(), values.max()
    if lo < 0 or hi > top or not np.array_equal(values, np.round(values)):
        raise ImageMismatch(
            f"has modality values {lo:g}..{hi:g} (after its rescale slope and intercept), not integers in "
            f"0..{top} (data.bit_depth={fmt.bit_depth}): set data.dicom_window=[center,width], e.g. [40,400] "
            "for CT soft tissue in HU"
        )
    return values.astype(DTYPES[fmt.bit_depth])


def _layout(arr: np.ndarray, fmt: ImageFormat) -> np.ndarray:
    """``arr`` as a (C, H, W) array of ``fmt``'s dtype, or :class:`ImageMismatch` saying why not."""
    want = np.dtype(DTYPES[fmt.bit_depth])
    if arr.dtype.kind != "u" or arr.dtype.itemsize != want.itemsize:
        raise ImageMismatch(
            f"holds {arr.dtype.name} values and data.bit_depth={fmt.bit_depth} reads {want.name}"
            + ("" if arr.dtype.kind != "u" else f": set data.bit_depth={8 * arr.dtype.itemsize}")
        )
    c = fmt.channels
    if arr.ndim == 2 and c == 1:
        arr = arr[None]
    elif arr.ndim == 3 and arr.shape[-1] == c:
        arr = arr.transpose(2, 0, 1)
    elif arr.ndim == 3 and arr.shape[0] == c:
        pass
    else:
        has = "1 channel" if arr.ndim == 2 else f"shape {tuple(arr.shape)}"
        raise ImageMismatch(
            f"has {has} and data.channels={c}: expected (H, W, {c}) or ({c}, H, W)"
            if arr.ndim == 3
            else f"has {has} and data.channels={c}"
        )
    return np.ascontiguousarray(arr.astype(want, copy=False))


def as_tensor(decoded: Image.Image | np.ndarray) -> Tensor:
    """A decoded image at its own size as a (C, H, W) tensor of its dtype (uint8 or uint16)."""
    if isinstance(decoded, Image.Image):
        x = torch.from_numpy(np.asarray(decoded).copy())
        return (x[None] if x.ndim == 2 else x.permute(2, 0, 1)).contiguous()
    return torch.from_numpy(decoded.copy())


def center_square(img: Image.Image, size: int) -> Image.Image:
    """Resize the shorter side to ``size`` and crop the centre square (so batches stack)."""
    w, h = img.size
    if (w, h) == (size, size):
        return img
    s = size / min(w, h)
    img = img.resize((max(size, round(w * s)), max(size, round(h * s))), Image.Resampling.BILINEAR)
    w, h = img.size
    left, top = (w - size) // 2, (h - size) // 2
    return img.crop((left, top, left + size, top + size))


def square(decoded: Image.Image | np.ndarray, size: int) -> Tensor:
    """The shorter side resized to ``size`` and the centre square cropped: a (C, size, size) tensor
    of the decoded dtype. PIL images are resized by PIL (bilinear, antialiased); arrays by torch
    (bilinear, antialiased, rounded back to their integer dtype)."""
    if isinstance(decoded, Image.Image):
        return as_tensor(center_square(decoded, size))
    x = torch.from_numpy(np.ascontiguousarray(decoded))
    h, w = x.shape[-2:]
    if (h, w) != (size, size):
        s = size / min(h, w)
        nh, nw = max(size, round(h * s)), max(size, round(w * s))
        if (nh, nw) != (h, w):
            top = float(np.iinfo(decoded.dtype).max)
            y = F.interpolate(x[None].float(), size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
            x = y[0].round().clamp(0, top).to(x.dtype)
        t, left = (nh - size) // 2, (nw - size) // 2
        x = x[:, t : t + size, left : left + size]
    return x.contiguous()
