"""Whether a JPEG frame is usable: its structure (cheap, every frame at every training start)
and ``decode_frame``, the one decision on its pixels that the check, the loader, the frame
cache and prediction share.

The header is a run of marker segments (``FF xx`` + a two-byte length) from SOI up to the first
SOS; the entropy-coded scans follow, and a complete image ends with an EOI marker after them.
Padding, a thumbnail's or an MPO's second image and camera maker data may all follow that EOI,
so a complete file need not *end* in ``FFD9``. Inside a scan ``FF`` is always stuffed (``FF00``)
or a restart marker (``FFD0``-``FFD7``), so an ``FFD9`` after the scan start is an end marker.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from io import BytesIO
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image

try:
    import simplejpeg
except ImportError:  # pragma: no cover - depends on the environment
    simplejpeg = None

SOI, EOI, SOS = 0xD8, 0xD9, 0xDA
# Frame headers SOF0..SOF15, less DHT (C4), JPG (C8) and DAC (CC), which share the range.
SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM and RSTn carry no length
DECODER = "simplejpeg" if simplejpeg is not None else "pillow-draft"
# What a decode failure raises: PIL raises OSError, simplejpeg ValueError.
DecodeError = (OSError, ValueError)
# libjpeg-turbo's words for a scan it could not decode whole: it fills the rest with grey.
DAMAGED = ("Corrupt JPEG data", "Premature end of JPEG file")


class FrameProblem(ValueError):
    """What is wrong with a frame, named by its ``DataReport`` field."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _truncated() -> FrameProblem:
    return FrameProblem("truncated_frames", "the file ends inside its header")


def _not_jpeg(message: str) -> FrameProblem:
    return FrameProblem("not_jpeg_frames", message)


@dataclass(frozen=True)
class Junk:
    """Bytes between two header segments that are no marker (libjpeg warns about them)."""

    offset: int
    length: int
    marker: int  # the marker they precede

    def message(self) -> str:
        """The warning libjpeg-turbo gives for them, word for word."""
        return (
            f"Corrupt JPEG data: {self.length} extraneous bytes before marker 0x{self.marker:02x}"
        )


@dataclass(frozen=True)
class Header:
    width: int
    height: int
    scan_start: int  # first byte of the first scan's entropy-coded data
    junk: tuple[Junk, ...] = ()


def _u16(data: bytes, at: int) -> int:
    return int.from_bytes(data[at : at + 2], "big")


def read_header(data: bytes) -> Header:
    """Walk the header segments of ``data`` to the first scan; raise ``FrameProblem``.

    ``data`` may be the file's first bytes only: running out of them is "truncated", and a
    caller holding more of the file tries again with it.
    """
    if data[:2] != b"\xff\xd8":
        raise _not_jpeg("no JPEG start marker")
    pos = segment_end = 2
    junk: list[Junk] = []
    size = None
    while True:
        ff = data.find(b"\xff", pos)
        if ff < 0:
            raise _truncated()
        at = ff
        while at + 1 < len(data) and data[at + 1] == 0xFF:
            at += 1  # fill bytes before a marker
        if at + 1 >= len(data):
            raise _truncated()
        marker, pos = data[at + 1], at + 2
        if marker == 0x00:  # FF00 is no marker here: more extraneous bytes
            continue
        if ff > segment_end:
            junk.append(Junk(segment_end, ff - segment_end, marker))
        if marker in STANDALONE:
            segment_end = pos
            continue
        if marker in (SOI, EOI):
            raise _not_jpeg(f"marker 0x{marker:02x} before any image data")
        if pos + 2 > len(data):
            raise _truncated()
        segment_end = pos + _u16(data, pos)
        if segment_end > len(data):
            raise _truncated()
        if marker in SOF and segment_end - pos >= 8:
            size = (_u16(data, pos + 5), _u16(data, pos + 3))
        if marker == SOS:
            if size is None or 0 in size:
                raise _not_jpeg("no frame size before the first scan")
            return Header(*size, scan_start=segment_end, junk=tuple(junk))
        pos = segment_end


def has_end(data: bytes, scan_start: int) -> bool:
    """Whether an EOI marker follows the scan that starts at ``scan_start``.

    A scan holds no ``FFD9`` (its ``FF`` bytes are stuffed), so the first one after its start
    ends it: one ``bytes.find``, whatever follows. Between the scans of a progressive file a
    table could hold those two bytes by chance; a file cut after one is caught when decoded.
    """
    return data.find(b"\xff\xd9", scan_start) >= 0


def without_junk(data: bytes, header: Header) -> bytes:
    """``data`` with the header's extraneous bytes cut out (what libjpeg skips, it warns of)."""
    parts, pos = [], 0
    for piece in header.junk:
        parts.append(data[pos : piece.offset])
        pos = piece.offset + piece.length
    return b"".join(parts) + data[pos:]


@dataclass(frozen=True)
class Decoded:
    pixels: np.ndarray  # (h, w, 3) uint8 RGB at the chosen DCT scale
    full_size: tuple[int, int]  # the frame's (height, width); the scaled one rounds it
    warning: Optional[str] = None  # what libjpeg warned of in a frame decoded completely
    replaced: bool = False  # a neighbour's pixels (decode_with_fallback)
    stand_in: bool = False  # black: no frame of the trial decodes (decode_with_fallback)


def decode_frame(path: Path, short_side: int) -> Decoded:
    """The one decision on a frame: its pixels at the smallest DCT scale that keeps both sides
    >= short_side, or ``DecodeError`` when it is not a complete image.

    Strict libjpeg-turbo first: any warning raises instead of returning the grey that libjpeg
    fills in after damage inside a scan. A warning about the header only is not damage:
    extraneous bytes between header segments are cut out and the rest decoded strictly again,
    and any other header complaint (an unknown JFIF revision or Adobe transform, a colour space
    simplejpeg does not convert, such as CMYK) goes to Pillow, which refuses truncated data.
    """
    data = Path(path).read_bytes()
    if simplejpeg is None:
        return _pillow(data, short_side)
    try:
        return _simplejpeg(data, short_side)
    except ValueError as err:
        warning = str(err)
    header = read_header(data)  # a FrameProblem (a ValueError) for no JPEG at all
    if header.junk:
        data = without_junk(data, header)
        try:
            return replace(_simplejpeg(data, short_side), warning=warning)
        except ValueError as err:
            warning = str(err)
    if warning.startswith(DAMAGED):
        raise ValueError(warning)
    return replace(_pillow(data, short_side), warning=warning)


def _simplejpeg(data: bytes, short_side: int) -> Decoded:
    height, width, _, _ = simplejpeg.decode_jpeg_header(data)
    pixels = simplejpeg.decode_jpeg(data, "RGB", min_height=short_side, min_width=short_side)
    return Decoded(pixels, (height, width))


def _pillow(data: bytes, short_side: int) -> Decoded:
    with Image.open(BytesIO(data)) as image:
        full = (image.height, image.width)
        image.draft("RGB", (short_side * image.width // min(image.size), short_side))
        return Decoded(np.asarray(image.convert("RGB")), full)
