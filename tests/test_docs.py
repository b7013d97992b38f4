"""The documents hold together: every relative link and anchor resolves, every section the docs name
("see README, "Running it every day"") exists, and `make soak` writes its figures into the generated
docs/soak-latest.md, never into the hand-written RELIABILITY.md."""

import re
from collections import Counter
from pathlib import Path

import pytest

from tests import soak

REPO = Path(__file__).resolve().parents[1]
DOCS = sorted([REPO / "README.md", REPO / "BENCHMARKS.md", REPO / "RELIABILITY.md", *(REPO / "docs").glob("*.md")])
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _without_code(text: str) -> str:
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    return re.sub(r"`[^`\n]*`", "", text)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _headings(path: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    return [m.group(2).strip() for m in re.finditer(r"^(#{1,6}) (.+)$", text, flags=re.M)]


def _anchors(path: Path) -> set[str]:
    return {_slug(h) for h in _headings(path)}


def test_the_docs_folder_has_the_files_the_readme_promises():
    for name in (
        "architecture",
        "exports",
        "identity",
        "marts",
        "queries",
        "clv",
        "tiers",
        "audiences",
        "operations",
        "spark",
        "performance",
        "testing",
        "DECISIONLOG",
        "soak-latest",
    ):
        assert (REPO / "docs" / f"{name}.md").is_file(), name


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_and_anchor_resolves(path):
    broken = []
    for target in LINK.findall(_without_code(path.read_text(encoding="utf-8"))):
        if re.match(r"[a-z]+:", target):
            continue  # an external address: not checked offline
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            broken.append(target)
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(target)
    assert not broken, f"{path.name}: links that lead nowhere: {broken}"


def test_headings_are_unique_within_each_document():
    for path in DOCS:
        dupes = [h for h, n in Counter(_slug(h) for h in _headings(path)).items() if n > 1]
        assert not dupes, f"{path.name}: two headings share an anchor: {dupes}"


def test_sections_named_in_quotes_exist():
    """A reference such as (see "Running it every day") or (README, "Checks and publishing") names a
    heading of the README, or of the document it stands in."""
    readme = _headings(REPO / "README.md")
    missing = []
    for path in DOCS:
        text = re.sub(r"\s+", " ", _without_code(path.read_text(encoding="utf-8")))
        own = _headings(path)
        for m in re.finditer(r"(?:see|README,|README's|README)\s+\"([^\"]+)\"", text):
            name = m.group(1)
            pool = readme if "README" in m.group(0) else readme + own
            if not any(h.startswith(name) for h in pool):
                missing.append(f"{path.name}: {m.group(0)}")
    assert not missing, missing


def test_soak_figures_go_to_the_generated_file_not_to_reliability_md(tmp_path):
    reliability = (REPO / "RELIABILITY.md").read_bytes()
    tally = soak.Tally(faults_injected=3, runs_survived=1, bad_inputs_tried=40, reader_queries=12)
    tally.kills_by_stage.update({"dbt": 1, "publish swap (fault point)": 2})
    tally.outcomes.update({"published outputs byte-identical": 1, "killed after the commit point, rolled forward": 2})
    tally.notes.append("took 5s")
    cfg = soak.Config(
        crash_rounds=1, hostile_examples=40, hostile_runs=0, readers=1, reader_runs=1, customers=50, seed=7
    )
    out = tmp_path / "soak-latest.md"
    soak.write_reliability(cfg, tally, tally.table(), path=out)
    text = out.read_text()
    assert text.startswith("# Latest `make soak` figures")
    assert "seed 7" in text and "Result: PASSED" in text
    assert "| faults injected (SIGKILL)      |       3 | dbt 1, publish swap (fault point) 2" in text
    assert "- killed after the commit point, rolled forward: 2" in text and "- took 5s" in text
    assert (REPO / "RELIABILITY.md").read_bytes() == reliability
    assert soak.SOAK_LATEST == REPO / "docs" / "soak-latest.md"


def test_reliability_links_the_generated_figures_and_holds_none_itself():
    reliability = (REPO / "RELIABILITY.md").read_text(encoding="utf-8")
    assert "docs/soak-latest.md" in reliability
    assert "faults injected (SIGKILL)" not in reliability  # the figures live in the generated file
    latest = (REPO / "docs" / "soak-latest.md").read_text(encoding="utf-8")
    assert latest.startswith("# Latest `make soak` figures") and "faults injected (SIGKILL)" in latest
