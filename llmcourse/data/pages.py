"""Plain documents: the .md/.txt pages of a folder (the shipped Kettlebird docs by default) and their sections."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from llmcourse.core.errors import CourseError


@dataclass(frozen=True)
class Section:
    """One '## ' section of a markdown page; heading is None for the text before the first one."""
    title: str
    heading: str | None
    text: str


def read_pages(folder: Path) -> list[tuple[str, str]]:
    """(file name, text) of every .md/.txt page in `folder`, sorted by name; one clear line when there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CourseError(f"{folder} is not a folder of .md/.txt pages: name a folder of documents.")
    pages = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".md", ".txt"))
    if not pages:
        raise CourseError(f"{folder} holds no .md or .txt pages: name a folder of documents.")
    return [(p.name, p.read_text(encoding="utf-8")) for p in pages]


def split_sections(markdown: str, default_title: str = "this") -> list[Section]:
    """A markdown page -> its sections, titled by the page's '# ' heading; blockquote notes are dropped."""
    lines = [ln for ln in markdown.strip().splitlines() if not ln.startswith(">")]
    title = next((ln[2:].strip() for ln in lines if ln.startswith("# ")), default_title)
    sections, heading, body = [], None, []

    def flush():
        text = "\n".join(body).strip()
        if text:
            sections.append(Section(title, heading, text))

    for ln in lines:
        if ln.startswith("# "):
            continue
        if ln.startswith("## "):
            flush()
            heading, body = ln[3:].strip(), []
        else:
            body.append(ln)
    flush()
    return sections
