"""Output file names: safe on every filesystem, unique within a run, deterministic in row order."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from pressrun.models import OutputFormat

UNSAFE_CHARS = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]+')
WINDOWS_RESERVED = {
    "con", "prn", "aux", "nul", "conin$", "conout$", *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))
}
KNOWN_EXTENSIONS = {".png", ".jpg", ".jpeg", ".webp", ".pdf", ".gif"}
MAX_NAME_BYTES = 200  # leaves room for "-12345" and the extension under the common 255-byte limit


def safe_stem(text: str) -> str:
    """Make ``text`` usable as a file name stem on Linux, macOS and Windows. May return ''."""
    text = unicodedata.normalize("NFC", text)
    text = UNSAFE_CHARS.sub("-", text)
    text = re.sub(r"\s+", " ", text).strip(" .-")
    if text.split(".")[0].lower() in WINDOWS_RESERVED:
        text = f"_{text}"
    encoded = text.encode("utf-8")[:MAX_NAME_BYTES]
    return encoded.decode("utf-8", errors="ignore").rstrip(" .")


class OutputNamer:
    """Assigns each row its file name. Collisions (also case-only ones, for case-insensitive
    filesystems) get ``-2``, ``-3``… so no row can overwrite another's file, nor one of the
    ``reserved`` names (the run's own files in the output folder: a merged PDF or ZIP written there).

    A ``--filename`` result ending in a known output extension (``.png``, ``.jpg``, ``.pdf``…) has it
    replaced by the run's, whichever it was: ``x.jpg`` in a PNG run is ``x.png``."""

    def __init__(self, fmt: OutputFormat, total_rows: int, reserved: Iterable[str] = ()) -> None:
        self.extension = fmt.extension
        self.index_width = max(len(str(total_rows)), 1)
        self._taken: set[str] = {name.lower() for name in reserved}
        self._next: dict[str, int] = {}  # per stem (lower case): the next -N suffix to try

    def default_stem(self, row_number: int) -> str:
        return str(row_number).zfill(self.index_width)

    def assign(self, rendered: str | None, row_number: int) -> str:
        """``rendered`` is the --filename template's output for this row (None: use the row number)."""
        stem = self.default_stem(row_number)
        if rendered is not None:
            candidate = rendered.strip()
            suffix = candidate[candidate.rfind(".") :].lower() if "." in candidate else ""
            if suffix in KNOWN_EXTENSIONS:
                candidate = candidate[: -len(suffix)]
            stem = safe_stem(candidate) or stem
        name = f"{stem}.{self.extension}"
        # Resume numbering where this stem left off: 50,000 rows with one name stay linear, not quadratic.
        counter = self._next.get(stem.lower(), 2)
        while name.lower() in self._taken:
            name = f"{stem}-{counter}.{self.extension}"
            counter += 1
        self._next[stem.lower()] = counter
        self._taken.add(name.lower())
        return name
