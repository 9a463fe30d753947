"""The README as a front door and the documentation site: short, in step with .ci/run, no broken links."""
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def readme_test_command() -> str:
    """The one command in the README's 'Running the tests' section."""
    section = README.read_text(encoding="utf-8").split("## Running the tests", 1)[1]
    (block,) = re.findall(r"```sh\n(.*?)\n```", section, flags=re.S)
    assert "\n" not in block.strip()
    return block.strip()


def test_the_readme_is_a_front_door():
    text = README.read_text(encoding="utf-8")
    assert len(text.encode("utf-8")) <= 15_000
    headings = re.findall(r"^## (.+)$", text, flags=re.M)
    assert headings == ["Install", "Your first scan", "What a verdict means", "Exit status", "What dfscan keeps on disk",
                        "Where to go next", "Running the tests"]
    assert "python3 -m venv" in text and "pip install ." in text and "Activate.ps1" in text
    assert "pip install 'dfscan[" not in text  # dfscan is not on PyPI: extras come from the clone


def test_ci_runs_exactly_the_readme_test_command():
    command = readme_test_command()
    lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert command in lines
    assert "mkdocs build --strict" in " ".join(lines) and "python -m pytest -m slow" in lines


def test_every_link_of_the_readme_names_a_file_that_exists():
    text = README.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
        if not target.startswith(("http://", "https://")):
            assert (ROOT / target).exists(), target


def test_no_document_names_a_package_pypi_does_not_have():
    for page in [README, *sorted((ROOT / "docs").glob("*.md"))]:
        assert "'dfscan[" not in page.read_text(encoding="utf-8"), page.name


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None and not os.environ.get("CI"),
                    reason="mkdocs is not installed (pip install '.[docs]')")
def test_the_site_builds_strictly(tmp_path):
    """`mkdocs build --strict`: a broken link or anchor, or a page missing from the nav's files, fails."""
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "site" / "index.html").is_file() and (tmp_path / "site" / "bad-input" / "index.html").is_file()
    shutil.rmtree(tmp_path / "site")
