"""The exact page size in a PDF Chromium printed.

Chromium writes a page box up to about a point larger than the paper it is asked for: A4 comes out
595.92 pt wide, not 595.28; A5 420 pt, not 419.53. A print shop's preflight reads the page box, so
:func:`exact_page_box` sets each page's ``/MediaBox`` to the size asked for. The sliver is cut at
the right and bottom edges; the top-left corner, where layout starts, stays put. Chromium lays the
page out at whole CSS pixels, so full-bleed content reaching those edges loses up to about a point
(at most one CSS pixel) there: the price of a page of exactly the paper size.

The file is edited in place: the page boxes, the byte offsets in the cross-reference table after
them, and ``startxref``, in tens of microseconds. A file of a shape it does not know
(cross-reference streams, incremental updates) is returned unchanged.
"""

from __future__ import annotations

import bisect
import re
from itertools import accumulate

# A page box as Chromium (Skia) writes it: on a line of its own in a page's dictionary, four plain
# numbers. Its content streams are compressed, and the text of strings (a <title>) never stands on
# a line of its own, so nothing else matches; each match is checked to be in a /Type /Page object.
MEDIA_BOX = re.compile(rb"^/MediaBox \[(-?[\d.]+) (-?[\d.]+) (-?[\d.]+) (-?[\d.]+)\]$", re.MULTILINE)
OBJECT_START = re.compile(rb"\d+ \d+ obj\s*<<\s*/Type\s*/Page\b(?!s)")
STARTXREF = re.compile(rb"startxref\s+(\d+)\s+%%EOF\s*$")
XREF_ENTRY = re.compile(rb"(\d{10}) (\d{5}) ([nf])(?: \r| \n|\r\n)")
# A box this much larger than asked for is Chromium's rounding; anything else is left as it is.
ROUNDING_PT = 2.0
SAME_PT = 0.005


def exact_page_box(data: bytes, width_pt: float, height_pt: float) -> bytes:
    """``data`` with every page box Chromium rounded up set to ``width_pt`` × ``height_pt`` (or the
    other way round, for a page the template's CSS turned to landscape)."""
    edits: list[tuple[int, int, bytes]] = []  # (start, end, replacement)
    for match in MEDIA_BOX.finditer(data):
        x0, y0, x1, y1 = (float(number) for number in match.groups())
        size = next((size for size in ((width_pt, height_pt), (height_pt, width_pt))
                     if rounded_from(x1 - x0, size[0]) and rounded_from(y1 - y0, size[1])), None)
        if size is None or not in_page_object(data, match.start()):
            continue  # not a page box Chromium rounded (or a size of the template's own)
        if abs(x1 - x0 - size[0]) < SAME_PT and abs(y1 - y0 - size[1]) < SAME_PT:
            continue  # exact already
        box = " ".join(number_text(v) for v in (x0, y1 - size[1], x0 + size[0], y1))
        edits.append((match.start(), match.end(), f"/MediaBox [{box}]".encode()))
    if not edits:
        return data
    return splice_keeping_offsets(data, edits) or data


def rounded_from(actual: float, wanted: float) -> bool:
    return -SAME_PT < actual - wanted < ROUNDING_PT


def in_page_object(data: bytes, position: int) -> bool:
    start = data.rfind(b" obj", 0, position)
    line = data.rfind(b"\n", 0, start) + 1
    return start >= 0 and OBJECT_START.match(data, line) is not None


def splice_keeping_offsets(data: bytes, edits: list[tuple[int, int, bytes]]) -> bytes | None:
    """Apply ``edits`` (ascending, not overlapping) and shift the cross-reference table's offsets to
    match; None if the file has no single classic cross-reference table after them."""
    tail = STARTXREF.search(data, max(0, len(data) - 64))
    if tail is None:
        return None
    xref_at = int(tail.group(1))
    if not data.startswith(b"xref", xref_at) or data.count(b"startxref") != 1 or edits[-1][1] > xref_at:
        return None  # a cross-reference stream, incremental updates, or edits outside the objects
    trailer_at = data.find(b"trailer", xref_at)
    if trailer_at < 0 or b"/Prev" in data[trailer_at:tail.start()]:
        return None
    starts = [start for start, _, _ in edits]
    growth = [0, *accumulate(len(new) - (end - start) for start, end, new in edits)]

    def shifted(offset: int) -> int:  # by the edits that start before it
        return offset + growth[bisect.bisect_left(starts, offset)]

    def fix_entry(entry: re.Match[bytes]) -> bytes:
        if entry.group(3) != b"n":
            return entry.group(0)
        return b"%010d" % shifted(int(entry.group(1))) + entry.group(0)[10:]

    out = bytearray()
    position = 0
    for start, end, new in edits:
        out += data[position:start]
        out += new
        position = end
    out += data[position:xref_at]
    out += XREF_ENTRY.sub(fix_entry, data[xref_at:trailer_at])
    out += data[trailer_at:tail.start()]
    out += b"startxref\n%d\n%%%%EOF\n" % shifted(xref_at)
    return bytes(out)


def number_text(value: float) -> str:
    """A PDF number: up to three decimals, no trailing zeros ('595.276', '0.64', '420')."""
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text
