"""The exact page size in a PDF Chromium printed.

Chromium lays the page out at the size it is asked for, but writes a page box up to about a point
larger: A4 comes out 595.92 pt wide, not 595.28; A5 420 pt, not 419.53. A print shop's preflight
reads the page box, so :func:`exact_page_box` sets each page's ``/MediaBox`` to the size asked
for, trimming the sliver at the right and bottom edges (the page's top-left corner, where layout
starts, stays put). It edits the file in place: the page boxes, the byte offsets in the
cross-reference table after them, and ``startxref``, in a few tens of microseconds; a file of a shape
it does not know (cross-reference streams, incremental updates) is returned unchanged.
"""

from __future__ import annotations

import re

# A page box with four plain numbers, as Chromium (Skia) writes it in each page's dictionary; its
# content streams are compressed, so the name does not occur in them as bytes.
MEDIA_BOX = re.compile(rb"/MediaBox\s*\[\s*(-?[\d.]+)\s+(-?[\d.]+)\s+(-?[\d.]+)\s+(-?[\d.]+)\s*\]")
STARTXREF = re.compile(rb"startxref\s+(\d+)\s+%%EOF\s*$")
XREF_ENTRY = re.compile(rb"(\d{10}) (\d{5}) ([nf])(?: \r| \n|\r\n)")
# A box this much larger than asked for is Chromium's rounding; anything else is left as it is.
ROUNDING_PT = 2.0
SAME_PT = 0.005


def exact_page_box(data: bytes, width_pt: float, height_pt: float) -> bytes:
    """``data`` with every page box Chromium rounded up set to ``width_pt`` × ``height_pt``."""
    edits: list[tuple[int, int, bytes]] = []  # (start, end, replacement)
    for match in MEDIA_BOX.finditer(data):
        x0, y0, x1, y1 = (float(number) for number in match.groups())
        extra_w, extra_h = (x1 - x0) - width_pt, (y1 - y0) - height_pt
        if not (-SAME_PT < extra_w < ROUNDING_PT and -SAME_PT < extra_h < ROUNDING_PT):
            continue  # not a page box Chromium rounded (or a size of the template's own)
        if extra_w < SAME_PT and extra_h < SAME_PT:
            continue  # exact already
        box = " ".join(number_text(v) for v in (x0, y1 - height_pt, x0 + width_pt, y1))
        edits.append((match.start(), match.end(), f"/MediaBox [{box}]".encode()))
    if not edits:
        return data
    return splice_keeping_offsets(data, edits) or data


def splice_keeping_offsets(data: bytes, edits: list[tuple[int, int, bytes]]) -> bytes | None:
    """Apply ``edits`` (in order, not overlapping) and shift the cross-reference table's offsets to
    match; None if the file has no single classic cross-reference table to shift."""
    tail = STARTXREF.search(data, max(0, len(data) - 64))
    if tail is None:
        return None
    xref_at = int(tail.group(1))
    if not data.startswith(b"xref", xref_at) or data.count(b"startxref") != 1:
        return None  # a cross-reference stream, or incremental updates
    if edits[-1][1] > xref_at:
        return None  # every edit must come before the table, in the objects it indexes

    def shifted(offset: int) -> int:
        return offset + sum(len(new) - (end - start) for start, end, new in edits if start < offset)

    trailer_at = data.find(b"trailer", xref_at)
    if trailer_at < 0 or b"/Prev" in data[trailer_at:tail.start()]:
        return None

    def fix_entry(entry: re.Match[bytes]) -> bytes:
        if entry.group(3) != b"n":
            return entry.group(0)
        return b"%010d" % shifted(int(entry.group(1))) + entry.group(0)[10:]

    table = XREF_ENTRY.sub(fix_entry, data[xref_at:trailer_at])
    out = bytearray()
    position = 0
    for start, end, new in edits:
        out += data[position:start]
        out += new
        position = end
    out += data[position:xref_at]
    out += table
    out += data[trailer_at:tail.start()]
    out += b"startxref\n%d\n%%%%EOF\n" % shifted(xref_at)
    return bytes(out)


def number_text(value: float) -> str:
    """A PDF number: up to three decimals, no trailing zeros ('595.276', '0.64', '420')."""
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text
