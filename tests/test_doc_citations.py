"""The compliance rules are cited from the repository's own docs/compliance.md, never from a
document outside it (a clone has no ../shared), and every section the code cites by
anchor exists there: a renamed heading would otherwise leave messages pointing nowhere."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMPLIANCE_DOC = ROOT / "docs" / "compliance.md"
OUTSIDE = (b"COMPLIANCE.md", b"../shared")
"""How a citation of the document outside the repository reads (case matters: the
project's own `docs/compliance.md` is lower case)."""
CITED_ANCHOR = re.compile(r"compliance\.md#([\w-]+)")
LOCAL_LINK = re.compile(r"\]\(#([\w-]+)\)")


def _project_files() -> list[Path]:
    """The files of the project (tracked, or new and not ignored), not build output such
    as src/medark.egg-info; this test's own file names what it looks for."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git work tree: which files are the project's is unknown")
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--",
         "README.md", "src", "docs", "tests"],
        cwd=ROOT, check=True, capture_output=True).stdout.decode().split("\0")
    found = sorted({ROOT / name for name in listed if name})
    return [p for p in found if p.is_file() and p != Path(__file__).resolve()]


def github_anchors(markdown: str) -> set[str]:
    """The anchors a Markdown renderer gives the headings (GitHub's rule: lower case,
    punctuation dropped, spaces to dashes); lines inside fenced code are not headings."""
    anchors: set[str] = set()
    fenced = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
            continue
        heading = re.match(r"#{1,6} +(.+?) *#* *$", line)
        if heading and not fenced:
            text = re.sub(r"[^\w\- ]", "", heading.group(1).lower())
            anchors.add(text.replace(" ", "-"))
    return anchors


def test_anchor_rule_matches_headings() -> None:
    doc = "# Title\n\n### Data residency\n```toml\n# not a heading\n```\n## 等保 2.0 `levels`\n"
    assert github_anchors(doc) == {"title", "data-residency", "等保-20-levels"}


def test_no_file_cites_the_document_outside_the_repository() -> None:
    citing = [f"{path.relative_to(ROOT)}: {needle.decode()}"
              for path in _project_files() for needle in OUTSIDE
              if needle in path.read_bytes()]
    assert citing == []


def test_every_cited_compliance_anchor_exists() -> None:
    anchors = github_anchors(COMPLIANCE_DOC.read_text(encoding="utf-8"))
    cited: dict[str, set[str]] = {}
    for path in _project_files():
        if path.suffix not in (".py", ".md", ".toml", ".html", ".txt"):
            continue
        text = path.read_text(encoding="utf-8")
        found = set(CITED_ANCHOR.findall(text))
        if path == COMPLIANCE_DOC:
            found |= set(LOCAL_LINK.findall(text))
        for anchor in found:
            cited.setdefault(anchor, set()).add(str(path.relative_to(ROOT)))
    src_cites = [a for a, paths in cited.items() if any(p.startswith("src/") for p in paths)]
    assert src_cites, "the code cites no section of docs/compliance.md"
    missing = {anchor: sorted(paths) for anchor, paths in cited.items()
               if anchor not in anchors}
    assert missing == {}
