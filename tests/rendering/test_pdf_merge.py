"""Merging PDFs: Chromium's own PDFs in order with their text, sizes and images; what pages inherit
from their page tree; memory that does not grow with the number of sources; unreadable sources."""

from __future__ import annotations

import base64
import io
import tracemalloc

import pytest
from PIL import Image
from pypdf import PdfReader, PdfWriter

from pressrun.models import OutputFormat, PdfOptions, RenderOptions
from pressrun.rendering import ChromiumRenderer
from pressrun.rendering.pdf import PdfMerger, merge_pdfs, merge_pdfs_bytes
from pressrun.settings import RenderSettings

pytestmark = pytest.mark.chromium



def red_png_url() -> str:
    """A red square as a data: URL, so the PDF carries an image XObject."""
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (255, 0, 0)).save(out, format="PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


@pytest.fixture(scope="module")
async def chromium_pdfs() -> dict[str, bytes]:
    """A one-page A6 PDF with an image and a two-page A5 one, printed by Chromium."""
    one = f"<html><body><h1>Alpha page</h1><img src='{red_png_url()}' width=64 height=64></body></html>"
    two = "<html><body><h1>Bravo one</h1><h1 style='break-before: page'>Bravo two</h1></body></html>"
    async with ChromiumRenderer(RenderSettings(concurrency=1)) as renderer:
        a6 = RenderOptions(format=OutputFormat.PDF, width_px=400, height_px=300, pdf=PdfOptions(page_size="a6"))
        a5 = RenderOptions(format=OutputFormat.PDF, width_px=400, height_px=300, pdf=PdfOptions(page_size="a5"))
        return {"one": (await renderer.render(one, a6)).data, "two": (await renderer.render(two, a5)).data}


def page_texts(data: bytes) -> list[str]:
    return [page.extract_text().strip() for page in PdfReader(io.BytesIO(data), strict=True).pages]


def test_merged_pages_keep_their_order_text_size_and_images(chromium_pdfs, tmp_path):
    one, two = chromium_pdfs["one"], chromium_pdfs["two"]
    (tmp_path / "one.pdf").write_bytes(one)
    pages = merge_pdfs([tmp_path / "one.pdf", two, one], tmp_path / "out" / "merged.pdf")

    merged = (tmp_path / "out" / "merged.pdf").read_bytes()
    assert pages == 4
    assert page_texts(merged) == ["Alpha page", "Bravo one", "Bravo two", "Alpha page"]
    reader = PdfReader(io.BytesIO(merged), strict=True)
    sources = [PdfReader(io.BytesIO(one)).pages[0], *PdfReader(io.BytesIO(two)).pages, PdfReader(io.BytesIO(one)).pages[0]]
    for page, source in zip(reader.pages, sources, strict=True):
        assert page.mediabox == source.mediabox
    for index in (0, 3):
        images = reader.pages[index].images
        assert len(images) == 1 and images[0].image.getpixel((4, 4))[:3] == (255, 0, 0)
    assert len(merged) < 1.1 * (2 * len(one) + len(two))  # each source's objects are written once


def test_bytes_and_files_merge_alike(chromium_pdfs):
    data, pages = merge_pdfs_bytes([chromium_pdfs["two"], chromium_pdfs["one"]])
    assert pages == 3
    assert page_texts(data) == ["Bravo one", "Bravo two", "Alpha page"]


def test_pages_bring_what_they_inherit_from_their_page_tree():
    # Media box and resources on the page tree node, not on the page: a merged page must carry them.
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 /MediaBox [0 0 200 100] "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Type /Page /Parent 2 0 R /Contents 4 0 R >>",
        b"<< /Length 38 >>\nstream\nBT /F1 12 Tf 10 10 Td (Inherited) Tj ET\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    source = hand_made_pdf(objects)
    assert PdfReader(io.BytesIO(source)).pages[0].extract_text() == "Inherited"

    data, pages = merge_pdfs_bytes([source, source])

    reader = PdfReader(io.BytesIO(data), strict=True)
    assert pages == 2 and [page.extract_text() for page in reader.pages] == ["Inherited", "Inherited"]
    assert [list(page.mediabox) for page in reader.pages] == [[0, 0, 200, 100]] * 2


def test_memory_does_not_grow_with_the_number_of_sources(chromium_pdfs, tmp_path):
    source = tmp_path / "one.pdf"
    source.write_bytes(chromium_pdfs["two"])

    def peak(count: int) -> int:
        tracemalloc.start()
        try:
            merge_pdfs([source] * count, tmp_path / "merged.pdf")
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    few, many = peak(100), peak(400)
    # Kept per source: its objects' offsets and its pages' numbers, well under 1 KB. Holding every
    # page until the end, as pypdf's own writer does, takes about 80 KB per source of this PDF.
    assert many - few < 300 * 2048, (few, many)
    assert len(PdfReader(tmp_path / "merged.pdf").pages) == 800


def test_an_unreadable_source_is_named_and_the_pages_before_it_are_kept(chromium_pdfs):
    out = io.BytesIO()
    merger = PdfMerger(out)
    merger.add(chromium_pdfs["one"], name="row 1")
    with pytest.raises(ValueError, match=r"row 2 is not a readable PDF"):
        merger.add(b"%PDF-1.4\nthis is not a PDF at all", name="row 2")
    merger.close()
    assert page_texts(out.getvalue()) == ["Alpha page"]


def test_an_encrypted_source_is_refused_by_name(chromium_pdfs):
    writer = PdfWriter(clone_from=io.BytesIO(chromium_pdfs["one"]))
    writer.encrypt("secret")
    encrypted = io.BytesIO()
    writer.write(encrypted)
    with pytest.raises(ValueError, match=r"locked\.pdf is encrypted"):
        PdfMerger(io.BytesIO()).add(encrypted.getvalue(), name="locked.pdf")


def hand_made_pdf(objects: list[bytes]) -> bytes:
    """A PDF with a correct cross-reference table around ``objects`` (numbered from 1)."""
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


async def test_anchor_links_still_lead_to_their_own_rows_page():
    # Chromium writes '#anchor' links as named destinations in the source's catalog, which a merge
    # leaves behind (and every row would bring the same names): they must become explicit ones.
    html = "<html><body><a href='#two'>to two</a><h1 id='two' style='break-before: page'>Two</h1></body></html>"
    options = RenderOptions(format=OutputFormat.PDF, width_px=400, height_px=300, pdf=PdfOptions(page_size="a6"))
    async with ChromiumRenderer(RenderSettings(concurrency=1)) as renderer:
        source = (await renderer.render(html, options)).data

    data, pages = merge_pdfs_bytes([source, source])

    reader = PdfReader(io.BytesIO(data), strict=True)
    numbers = [page.indirect_reference.idnum for page in reader.pages]
    for first_page in (0, 2):
        (link,) = [a.get_object() for a in reader.pages[first_page]["/Annots"]]
        assert numbers.index(link["/Dest"][0].idnum) == first_page + 1


def test_a_source_that_breaks_while_being_copied_leaves_a_valid_file_of_the_other_pages(chromium_pdfs, monkeypatch):
    # pypdf forgives most damage, so the failure half-way through a copy is staged: the third object
    # of row 2 cannot be written, after its numbers were handed out and two objects written.
    out = io.BytesIO()
    merger = PdfMerger(out)
    merger.add(chromium_pdfs["one"], name="row 1")
    write = PdfMerger._write
    calls = {"n": 0}

    def failing_write(self, number, obj):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RecursionError("maximum recursion depth exceeded")
        write(self, number, obj)

    monkeypatch.setattr(PdfMerger, "_write", failing_write)
    with pytest.raises(ValueError, match=r"row 2 is not a readable PDF \(RecursionError"):
        merger.add(chromium_pdfs["two"], name="row 2")
    monkeypatch.setattr(PdfMerger, "_write", write)
    merger.add(chromium_pdfs["one"], name="row 3")
    merger.close()

    data = out.getvalue()
    assert page_texts(data) == ["Alpha page", "Alpha page"]
    xref = data.rsplit(b"\nxref\n", 1)[1].split(b"trailer")[0].splitlines()[2:]
    in_use = [line for line in xref if line.endswith(b" n ")]
    assert len(xref) > len(in_use)  # row 2's unwritten numbers are listed as free ...
    assert all(not line.startswith(b"0000000000") for line in in_use)  # ... not as objects at offset 0


def test_a_failed_merge_leaves_the_previous_file_in_place(chromium_pdfs, tmp_path):
    destination = tmp_path / "merged.pdf"
    merge_pdfs([chromium_pdfs["one"]], destination)
    before = destination.read_bytes()
    with pytest.raises(ValueError, match="not a readable PDF"):
        merge_pdfs([chromium_pdfs["two"], b"not a pdf"], destination)
    assert destination.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["merged.pdf"]  # no partial file left beside it


def test_a_page_without_a_type_does_not_bring_its_page_tree_along():
    # /Type may be missing on a page (readers infer it); its /Parent must not be followed either.
    source = hand_made_pdf([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 /MediaBox [0 0 200 100] >>",
        b"<< /Parent 2 0 R /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length 38 >>\nstream\nBT /F1 12 Tf 10 10 Td (Inherited) Tj ET\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ])
    data, pages = merge_pdfs_bytes([source])
    assert pages == 1 and page_texts(data) == ["Inherited"]
    assert data.count(b"/Type /Pages") == 1  # only the merged document's own page tree
