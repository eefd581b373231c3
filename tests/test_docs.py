"""The documentation's links: every relative link reaches a file, every #anchor a heading."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README_MAX_BYTES = 12_000

# Pages that other changes of issue 16 and of the security issues add, linked here ahead of them.
# A missing one is allowed; once it exists its links and anchors are checked like any other page.
PENDING_PAGES = frozenset(
    {
        "docs/security.md",
        "docs/decisions/hand-packed-amqp-frames.md",
        "docs/decisions/notification-fields-from-our-rows.md",
        "docs/decisions/send-limit-counter.md",
    }
)

_FENCE = re.compile(r"^\s*(```|~~~)")
_CODE_SPAN = re.compile(r"`[^`]*`")
_INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE_DEFINITION = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$")
_ATX_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")
_HTML_ANCHOR = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def documentation_pages(root: Path) -> list[Path]:
    """README.md and every Markdown page under docs/."""
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def _prose_lines(text: str) -> Iterable[str]:
    """The lines outside fenced code blocks."""
    fence = None
    for line in text.splitlines():
        match = _FENCE.match(line)
        if match and fence is None:
            fence = match.group(1)
        elif match and line.strip().startswith(fence):
            fence = None
        elif fence is None:
            yield line


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its text, lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = text.replace("`", "").replace("*", "").lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors_of(text: str) -> set[str]:
    """Every anchor of a page: its headings' slugs (repeats numbered as GitHub does) and HTML anchors."""
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    for line in _prose_lines(text):
        heading = _ATX_HEADING.match(line)
        if heading:
            slug = github_slug(heading.group(2))
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            anchors.add(slug if count == 0 else f"{slug}-{count}")
        anchors.update(_HTML_ANCHOR.findall(line))
    return anchors


def link_targets(text: str) -> list[str]:
    """The targets of a page's inline links and reference definitions, code left out."""
    targets: list[str] = []
    for line in _prose_lines(text):
        definition = _REFERENCE_DEFINITION.match(line)
        if definition:
            targets.append(definition.group(1))
            continue
        targets.extend(_INLINE_LINK.findall(_CODE_SPAN.sub("", line)))
    return targets


def broken_links(root: Path, pages: Iterable[Path], pending: frozenset[str] = PENDING_PAGES) -> list[str]:
    """`page: target (why)` for every relative link or anchor in `pages` that resolves to nothing."""
    root = root.resolve()
    broken: list[str] = []
    for page in pages:
        page_name = page.resolve().relative_to(root).as_posix()
        for target in link_targets(page.read_text(encoding="utf-8")):
            if _SCHEME.match(target):
                continue  # a URL: outside what this test can resolve
            path_part, _, anchor = target.partition("#")
            resolved = (page.parent / path_part).resolve() if path_part else page.resolve()
            try:
                name = resolved.relative_to(root).as_posix()
            except ValueError:
                broken.append(f"{page_name}: {target} (outside the repository)")
                continue
            if not resolved.exists():
                if name not in pending:
                    broken.append(f"{page_name}: {target} (no such file)")
                continue
            if not anchor:
                continue
            if resolved.suffix != ".md":
                broken.append(f"{page_name}: {target} (an anchor into a page that is not Markdown)")
            elif anchor not in anchors_of(resolved.read_text(encoding="utf-8")):
                broken.append(f"{page_name}: {target} (no such heading)")
    return broken


def test_every_relative_link_and_anchor_of_the_readme_and_docs_resolves():
    assert broken_links(ROOT, documentation_pages(ROOT)) == []


def test_readme_stays_within_its_size_for_a_first_hour():
    assert (ROOT / "README.md").stat().st_size <= README_MAX_BYTES


def test_the_docs_link_every_page_under_docs_from_somewhere():
    pages = documentation_pages(ROOT)
    linked = {
        (page.parent / target.partition("#")[0]).resolve()
        for page in pages
        for target in link_targets(page.read_text(encoding="utf-8"))
        if not _SCHEME.match(target) and target.partition("#")[0]
    }

    assert [page.relative_to(ROOT).as_posix() for page in pages[1:] if page.resolve() not in linked] == []


@pytest.mark.parametrize(
    ("heading", "slug"),
    [
        ("Guarantees and how they are kept", "guarantees-and-how-they-are-kept"),
        ("2. The relay (`manage.py relay`)", "2-the-relay-managepy-relay"),
        ("The ops dashboard's cost", "the-ops-dashboards-cost"),
        ("0003: The two-statement claim", "0003-the-two-statement-claim"),
        ("Read **more** in [docs](docs/x.md)", "read-more-in-docs"),
        ("`outbox_bench` → figures", "outbox_bench--figures"),
    ],
)
def test_headings_get_githubs_anchors(heading, slug):
    assert github_slug(heading) == slug


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_a_broken_file_link_or_anchor_is_reported_and_working_ones_are_not(tmp_path):
    readme = _write(
        tmp_path / "README.md",
        "# Intro\n\n## Setup\n\n## Setup\n\n"
        "[ok](docs/guide.md) [ok](docs/guide.md#first-steps) [ok](#setup-1) [ok](https://example.com/x#y)\n"
        "[gone](docs/missing.md) [bad](#nowhere) [bad](docs/guide.md#last-steps)\n"
        "`[in code](docs/also-missing.md)`\n\n"
        "```\n[in a fence](docs/fenced-missing.md)\n```\n\n"
        "[ref]: docs/ref-missing.md\n",
    )
    guide = _write(
        tmp_path / "docs" / "guide.md",
        "# Guide\n\n## First steps\n\n[up](../README.md#intro) [up](../README.md#outro)\n",
    )

    assert broken_links(tmp_path, [readme, guide], pending=frozenset()) == [
        "README.md: docs/missing.md (no such file)",
        "README.md: #nowhere (no such heading)",
        "README.md: docs/guide.md#last-steps (no such heading)",
        "README.md: docs/ref-missing.md (no such file)",
        "docs/guide.md: ../README.md#outro (no such heading)",
    ]


def test_a_pending_page_is_allowed_missing_and_checked_once_it_exists(tmp_path):
    readme = _write(tmp_path / "README.md", "# Intro\n\n[later](docs/later.md#its-part)\n")
    pending = frozenset({"docs/later.md"})

    assert broken_links(tmp_path, [readme], pending=pending) == []

    later = _write(tmp_path / "docs" / "later.md", "# Later\n\n[gone](gone.md)\n")

    assert broken_links(tmp_path, [readme, later], pending=pending) == [
        "README.md: docs/later.md#its-part (no such heading)",
        "docs/later.md: gone.md (no such file)",
    ]
