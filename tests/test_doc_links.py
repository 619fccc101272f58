"""Every relative link in README.md and docs/**/*.md points at an existing file, and every #anchor at a heading.

Anchors follow GitHub's slugs: the heading's rendered text, lower-cased, every character that is not a letter, a digit,
a space, a hyphen or an underscore dropped, spaces turned into hyphens; a repeated slug gets -1, -2, ... in page order.
Links to http(s), mailto and other schemes are skipped, and so is anything inside fenced code blocks or inline code.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from urllib.parse import unquote

import pytest

REPO = Path(__file__).resolve().parents[1]

# Links that are broken in pages written by a generator (bench/*.py), which must not be edited by hand: each entry is
# (page relative to the repository, link target as written). Fix the generator, rerun it, then delete the entry; the
# test fails while an entry is listed but no longer broken, so the list cannot go stale.
KNOWN_BROKEN: set[tuple[str, str]] = set()

FENCE = re.compile(r"^ {0,3}(?:\s*)(`{3,}|~{3,})")
HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)[ \t]*#*[ \t]*$")
SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(<[^>\n]*>|[^\s()]*(?:\([^\s()]*\)[^\s()]*)*)"
                         r"(?:\s+(?:\"[^\"]*\"|'[^']*'|\([^()]*\)))?\s*\)")
REFERENCE_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>\n]*>|\S+)", re.MULTILINE)
HTML_ANCHOR = re.compile(r"<a\s[^>]*(?:name|id)\s*=\s*[\"']([^\"']+)[\"']", re.IGNORECASE)
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def pages() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def strip_code_blocks(text: str) -> list[str]:
    """The page's lines with every fenced code block blanked (line numbers kept)."""
    lines, fence = [], None
    for line in text.splitlines():
        match = FENCE.match(line)
        if fence is None and match:
            fence = match.group(1)
            lines.append("")
        elif fence is not None:
            closing = match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence)
            if closing and not line.strip()[len(match.group(1)):].strip():
                fence = None
            lines.append("")
        else:
            lines.append(line)
    return lines


def strip_inline_code(text: str) -> str:
    """Code spans (any number of backticks, possibly over several lines) replaced by a space."""
    out, i = [], 0
    while i < len(text):
        if text[i] != "`":
            out.append(text[i])
            i += 1
            continue
        run = len(text[i:]) - len(text[i:].lstrip("`"))
        ticks = text[i:i + run]
        end = re.compile(rf"(?<!`){ticks}(?!`)").search(text, i + run)
        if end is None:  # an unmatched run of backticks is literal text
            out.append(ticks)
            i += run
        else:
            out.append(" ")
            i = end.end()
    return "".join(out)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's source text."""
    text = strip_inline_code_keep_text(heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link's text only
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML tags
    text = text.strip().lower()
    kept = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LMN")
    return kept.replace(" ", "-")


def strip_inline_code_keep_text(text: str) -> str:
    return re.sub(r"(`+)(.+?)\1", r"\2", text)


def anchors(page: Path) -> set[str]:
    lines = strip_code_blocks(page.read_text(encoding="utf-8"))
    found, seen = set(), {}
    for index, line in enumerate(lines):
        match = HEADING.match(line)
        if match:
            title = match.group(2)
        elif (SETEXT.match(line) and index > 0 and lines[index - 1].strip()
              and not HEADING.match(lines[index - 1]) and not lines[index - 1].lstrip().startswith(("|", "-", "*"))):
            title = lines[index - 1].strip()
        else:
            continue
        base = slug(title)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    found.update(HTML_ANCHOR.findall("\n".join(lines)))
    return found


def links(page: Path) -> list[str]:
    text = strip_inline_code("\n".join(strip_code_blocks(page.read_text(encoding="utf-8"))))
    targets = [match.group(1) for match in INLINE_LINK.finditer(text)]
    targets += REFERENCE_DEFINITION.findall(text)
    return [target[1:-1] if target.startswith("<") else target for target in targets]


def problem(page: Path, target: str) -> str | None:
    """Why a relative link does not resolve, or None when it does (or is not relative)."""
    if not target or SCHEME.match(target) or target.startswith("//"):
        return None
    path, _, anchor = target.partition("#")
    file = page if not path else (page.parent / unquote(path)).resolve()
    if not file.exists():
        return f"{file} does not exist"
    if anchor:
        if file.is_dir() or file.suffix.lower() != ".md":
            return f"#{anchor} on a file that is not a Markdown page"
        if unquote(anchor).lower() not in anchors(file):
            return f"no heading of {file} has the anchor #{anchor}"
    return None


def broken_links() -> dict[tuple[str, str], str]:
    broken = {}
    for page in pages():
        for target in links(page):
            reason = problem(page, target)
            if reason:
                broken[(page.relative_to(REPO).as_posix(), target)] = reason
    return broken


def test_every_relative_link_and_anchor_resolves():
    broken = broken_links()
    unexpected = {key: reason for key, reason in broken.items() if key not in KNOWN_BROKEN}
    assert not unexpected, "broken links:\n" + "\n".join(f"{page}: ({target}) {reason}"
                                                         for (page, target), reason in sorted(unexpected.items()))
    fixed = KNOWN_BROKEN - set(broken)
    assert not fixed, f"these links resolve now: delete them from KNOWN_BROKEN: {sorted(fixed)}"


def test_the_pages_have_links_to_check():
    """Guards the parser: README links out to the docs, and every docs page the README names exists."""
    readme = links(REPO / "README.md")
    assert any(target.startswith("docs/") for target in readme)
    for page in sorted((REPO / "docs").glob("*.md")):
        assert any(target.split("#")[0] == f"docs/{page.name}" for target in readme), f"README has no link to {page}"


@pytest.mark.parametrize(("heading", "expected"), [
    ("Student recipe (ablation ladder)", "student-recipe-ablation-ladder"),
    ("Metrics with `evaluate`", "metrics-with-evaluate"),
    ("PEFT, heads and attention back-ends", "peft-heads-and-attention-back-ends"),
    ("The anchor's precision: bf16 changes nothing measurable",
     "the-anchors-precision-bf16-changes-nothing-measurable"),
    ("Results (dev, × 100; ± is the standard deviation over fine-tuning seeds)",
     "results-dev--100--is-the-standard-deviation-over-fine-tuning-seeds"),
    ("A [linked](x.md) *title*", "a-linked-title"),
])
def test_slugs_follow_github(heading, expected):
    assert slug(heading) == expected


def test_duplicate_headings_and_code_blocks(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Notes\n\n## Notes\n\n```bash\n# not a heading\n[x](missing.md)\n```\n\n`[y](missing.md)`\n"
                    "[self](#notes-1) [gone](#notes-2)\n", encoding="utf-8")
    assert anchors(page) == {"notes", "notes-1"}
    assert links(page) == ["#notes-1", "#notes-2"]
    assert problem(page, "#notes-1") is None and problem(page, "#notes-2")
