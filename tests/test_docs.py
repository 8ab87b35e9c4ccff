"""The docs stand alone: no tracked file points outside the repository (the parent folder's
``shared/`` notes), every ``docs/...`` path a tracked file names exists, and every link of README.md
and docs/*.md resolves to a file of the repository and, with a ``#fragment``, to one of its headings."""

from __future__ import annotations

import re
import subprocess
import unicodedata
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OUTSIDE = re.compile(r"\.\./" + "shared/")          # split so this file does not name it itself
DOCS_PATH = re.compile(r"(?<![\w/.-])docs/[\w./-]+\.(?:md|png|svg)")
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|!\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)


def _tracked() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [ROOT / name for name in out.decode().split("\0") if name]


def _text(path: Path) -> str | None:
    try:
        data = path.read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        return None
    if b"\0" in data[:8192]:
        return None
    return data.decode("utf-8", errors="replace")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, markup and punctuation but "_" dropped, spaces to hyphens."""
    text = re.sub(r"[`*]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    text = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LN")
    return text.replace(" ", "-")


@cache
def _anchors(path: Path) -> frozenset[str]:
    text = FENCE.sub("", path.read_text())
    seen: dict[str, int] = {}
    anchors = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*$", text, re.M):
        slug = _slug(heading)
        anchors.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    anchors.update(re.findall(r'<a\s+(?:id|name)="([^"]+)"', text))  # explicit anchors, as GitHub renders them
    return frozenset(anchors)


def test_no_tracked_file_points_outside_the_repository() -> None:
    found = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}" for path in _tracked() if (text := _text(path))
             for n, line in enumerate(text.splitlines(), 1) if OUTSIDE.search(line)]
    assert not found, "the docs must stand alone; bring the content into docs/ instead:\n" + "\n".join(found)


def test_every_docs_path_a_tracked_file_names_exists() -> None:
    missing = [f"{path.relative_to(ROOT)}:{n}: {match}" for path in _tracked() if (text := _text(path))
               for n, line in enumerate(text.splitlines(), 1) for match in DOCS_PATH.findall(line)
               if not (ROOT / match).exists()]
    assert not missing, "\n".join(missing)


def _broken_links(page: Path, root: Path = ROOT) -> list[str]:
    broken = []
    text = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), page.read_text())
    for n, line in enumerate(text.splitlines(), 1):
        for groups in LINK.findall(line):
            target = next(g for g in groups if g)
            if re.match(r"[a-z][a-z0-9+.-]*:", target):   # https:, mailto:: not ours to check
                continue
            name, _, fragment = target.partition("#")
            file = (page.parent / name).resolve() if name else page
            where = f"{page.relative_to(root)}:{n}: ({target})"
            if not file.is_relative_to(root):
                broken.append(f"{where} points outside the repository")
            elif not file.exists():
                broken.append(f"{where} does not exist")
            elif fragment and file.suffix == ".md" and fragment not in _anchors(file):
                broken.append(f"{where} has no heading #{fragment}")
    return broken


@pytest.mark.parametrize("page", [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))],
                         ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_link_of_the_docs_resolves(page: Path) -> None:
    broken = _broken_links(page)
    assert not broken, "\n".join(broken)


def test_the_link_check_can_fail(tmp_path: Path) -> None:
    page = ROOT / "docs" / "gateway-health.md"
    assert "envoy" in _anchors(page) and "litellm-proxy" in _anchors(page)
    assert _slug("Detection and recovery windows (Envoy 1.40)") == "detection-and-recovery-windows-envoy-140"
    assert LINK.findall("see [x](missing.md#a) and ![y](img/z.png)") == [("missing.md#a", ""), ("", "img/z.png")]
    assert OUTSIDE.search("from ../" + "shared/notes/gateway-health.md")
    (tmp_path / "guide").mkdir()
    (tmp_path / "guide" / "b.md").write_text("# B page\n## Its `part_one`\n")
    page = tmp_path / "guide" / "a.md"
    page.write_text("[ok](b.md#its-part_one) [gone](c.md) [no heading](b.md#nope) [out](../../x.md)\n"
                    "```\n[in a fence](ignored.md)\n```\n[web](https://example.org)\n")
    assert _broken_links(page, tmp_path) == [
        "guide/a.md:1: (c.md) does not exist", "guide/a.md:1: (b.md#nope) has no heading #nope",
        "guide/a.md:1: (../../x.md) points outside the repository"]
