"""Reading files and folders: formats, cleaning of the real seeds, and bad input."""

from __future__ import annotations

from pathlib import Path

from index.chunking import chunk_text
from index.clean import find_blocks
from index.readers import read_document, read_documents

from conftest import SEEDS

BOILERPLATE = ["Back to Home", "About the Author", "About Me", "Continue to read", "Disclaimer",
               "Page| 3", "ORCID", "Scopus", "E-mail", "fair use", "Become a Member",
               "Copyright ©", "Staff Writer", "min read", "[South Front](#)"]


def words(text: str) -> int:
    return len(text.split())


def test_seed_passages_hold_no_boilerplate_and_exact_offsets():
    for path in sorted(SEEDS.glob("*.txt")):
        text = path.read_text(encoding="utf-8")
        passages = chunk_text(path.stem, text, words)
        assert passages, path
        for passage in passages:
            assert text[passage.start:passage.end] == passage.text
            for marker in BOILERPLATE:
                assert marker not in passage.text, (path.name, marker, passage.text[:80])


def test_seed_cleaning_keeps_the_body():
    """Cleaning drops furniture, not content: body sentences from start and end survive."""
    keep = {
        "000_039ca47dc707ee83.txt": ["An Iranian delegation, led by President Hassan Rouhani",
                                     "approach in the sphere of regional security"],
        "001_cc0add0a45bd4355.txt": ["On January 10, Iran’s Foreign Minister Javad Zarif",
                                     "limiting the scope of the Moscow-Tehran partnership"],
        "002_f97a6adf81882357.txt": ["Considering the importance of political and security",
                                     "over one’s own national interests"],
        "003_d8c3740e974eafd9.txt": ["The intricate tapestry of Middle Eastern geopolitics",
                                     "dissolve into renewed rivalry"],
        "004_a0ef8930b097d28c.txt": ["Tehran’s official position on Russian military",
                                     "most likely have reached their limit"],
    }
    for name, phrases in keep.items():
        text = (SEEDS / name).read_text(encoding="utf-8")
        body = " ".join(" ".join(text[b.start:b.end].split()) for b in find_blocks(text))
        for phrase in phrases:
            assert phrase in body, (name, phrase)


def test_pdf_running_header_and_numbered_headings():
    text = (SEEDS / "002_f97a6adf81882357.txt").read_text(encoding="utf-8")
    passages = chunk_text("002", text, words)
    headings = {p.heading for p in passages}
    assert "8. CONFLICTING INTERESTS AND CHALLENGES OF COOPERATION IN SYRIA" in headings
    assert not any("A Research Into Iran—Russia Cooperation" in p.text for p in passages)


def test_markdown_and_text(tmp_path: Path):
    (tmp_path / "note.md").write_text("# Pipeline notes\n\nThe gas pipeline was planned in 2011. "
                                      "It would cross Iraq.\n", encoding="utf-8")
    document = read_document(tmp_path / "note.md")
    assert document.kind == "markdown"
    assert document.title == "Pipeline notes"
    assert document.text.startswith("# Pipeline notes")


def test_html_main_text_without_chrome(tmp_path: Path):
    page = """<html><head><title>Tartus report</title><script>var x = "tracking";</script></head>
    <body><nav><a href="/">Home</a> | <a href="/about">About</a></nav>
    <article><h1>The naval base</h1><p>Tartus is the only Russian naval facility in the
    Mediterranean.</p><p>It was <b>expanded</b> in 2017.</p></article>
    <footer>Copyright 2020 Example Media</footer></body></html>"""
    (tmp_path / "report.html").write_text(page, encoding="utf-8")
    document = read_document(tmp_path / "report.html")
    assert document.title == "Tartus report"
    assert "Tartus is the only Russian naval facility in the Mediterranean." in document.text
    assert "It was expanded in 2017." in document.text
    for chrome in ("tracking", "About", "Copyright"):
        assert chrome not in document.text


def _minimal_pdf(pages: list[str]) -> bytes:
    """A valid PDF with one line of Helvetica text per page (enough for pypdf to extract)."""
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", ""]
    kids = []
    for text in pages:
        content = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
        page_no = len(objects) + 1
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
                       f"/Contents {page_no + 1} 0 R /Resources << /Font << /F1 << /Type /Font "
                       f"/Subtype /Type1 /BaseFont /Helvetica >> >> >> >>")
        objects.append(f"<< /Length {len(content)} >>\nstream\n{content.decode()}\nendstream")
        kids.append(f"{page_no} 0 R")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(pages)} >>"
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{o:010d} 00000 n \n" for o in offsets).encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF".encode()
    return out


def test_pdf_pages(tmp_path: Path):
    (tmp_path / "paper.pdf").write_bytes(_minimal_pdf(["Russia vetoed the resolution.",
                                                       "Iran sent advisers to Syria."]))
    document = read_document(tmp_path / "paper.pdf")
    assert document.kind == "pdf"
    assert "Russia vetoed the resolution." in document.text
    second = document.meta["page_starts"][1]
    assert document.text[second:].startswith("Iran sent advisers to Syria.")


def test_bad_files_are_skipped_with_reasons(tmp_path: Path):
    (tmp_path / "good.txt").write_text("Moscow and Tehran disagree about Assad's future role.",
                                       encoding="utf-8")
    (tmp_path / "binary.txt").write_bytes(b"\x00\x01\x02PNG\x00" * 50)
    (tmp_path / "empty.md").write_text("   \n\n", encoding="utf-8")
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    (tmp_path / "picture.png").write_bytes(b"\x89PNG")
    empty = tmp_path / "empty-folder"
    empty.mkdir()
    documents, skipped = read_documents([tmp_path, empty, tmp_path / "missing.txt",
                                         tmp_path / "picture.png"])
    assert [d.doc_id for d in documents] == ["good"]
    reasons = {Path(s.path).name: s.reason for s in skipped}
    assert "binary" in reasons["binary.txt"]
    assert "no text" in reasons["empty.md"]
    assert "cannot be read" in reasons["broken.pdf"] or "no text" in reasons["broken.pdf"]
    assert "no .txt" in reasons["empty-folder"]
    assert "no such file" in reasons["missing.txt"]
    assert "unsupported" in reasons["picture.png"]


def test_windows_1252_text_is_read(tmp_path: Path):
    (tmp_path / "legacy.txt").write_bytes("Lavrov said “Assad is not our ally”.".encode("cp1252"))
    assert "“Assad is not our ally”" in read_document(tmp_path / "legacy.txt").text
