"""Builds seeds/trending-papers.xml (Atom) from the saved trending-papers page text.

The page text is a title line, a blank line, an abstract paragraph, and so on, after a few lines
of page furniture (a tab name, a subscribe box, a byline, the date). Run it again after editing
the text: guids come from the titles, so the papers keep their identity.

    python seeds/build_seed_feed.py [PAGE_TEXT] [OUTPUT]
"""

import hashlib
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from xml.sax.saxutils import escape

SEEDS = Path(__file__).resolve().parent
PAGE = SEEDS / "trending-papers-page.txt"
OUTPUT = SEEDS / "trending-papers.xml"
# The page shows "Mar 17" without a year; the capture was made in 2026.
PAGE_YEAR = 2026
# A title is one short line; an abstract is a long paragraph. Page furniture is neither.
MAX_TITLE_CHARS = 300
MIN_ABSTRACT_CHARS = 200
_DATE_LINE = re.compile(r"^(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]* \d{1,2}$")


def read_papers(text: str) -> tuple[list[tuple[str, str]], datetime | None]:
    """(title, abstract) pairs in page order, and the page's date when it shows one."""
    blocks = [" ".join(block.split()) for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n"))]
    blocks = [block for block in blocks if block]
    page_date = None
    papers: list[tuple[str, str]] = []
    index = 0
    while index < len(blocks):
        block = blocks[index]
        if _DATE_LINE.match(block):
            page_date = datetime.strptime(f"{block} {PAGE_YEAR}", "%b %d %Y").replace(tzinfo=UTC)
        following = blocks[index + 1] if index + 1 < len(blocks) else ""
        if len(block) <= MAX_TITLE_CHARS and len(following) >= MIN_ABSTRACT_CHARS:
            papers.append((block, following))
            index += 2
        else:
            index += 1
    return papers, page_date


def guid_for(title: str) -> str:
    digest = hashlib.sha1(" ".join(title.lower().split()).encode(), usedforsecurity=False).hexdigest()[:16]
    return f"urn:paperboy:seed:{digest}"


def build_feed(papers: list[tuple[str, str]], page_date: datetime | None) -> str:
    stamp = (page_date or datetime(PAGE_YEAR, 1, 1, tzinfo=UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    entries = []
    for title, abstract in papers:
        entries.append(
            "  <entry>\n"
            f"    <id>{guid_for(title)}</id>\n"
            f"    <title>{escape(title)}</title>\n"
            f"    <published>{stamp}</published>\n"
            f"    <updated>{stamp}</updated>\n"
            f"    <summary>{escape(abstract)}</summary>\n"
            "  </entry>\n"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<feed xmlns="http://www.w3.org/2005/Atom">\n'
        "  <id>urn:paperboy:seed:trending-papers</id>\n"
        "  <title>Paperboy seed papers (trending papers page)</title>\n"
        f"  <updated>{stamp}</updated>\n"
        f"{''.join(entries)}"
        "</feed>\n"
    )


def main(argv: list[str]) -> int:
    page = Path(argv[1]) if len(argv) > 1 else PAGE
    output = Path(argv[2]) if len(argv) > 2 else OUTPUT
    papers, page_date = read_papers(page.read_text(encoding="utf-8"))
    output.write_text(build_feed(papers, page_date), encoding="utf-8")
    print(f"{len(papers)} papers written to {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
