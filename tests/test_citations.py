"""Every citation of the course notes (section, equation, numbered box) is one the notes have.

The notes' text and the checker live beside the checkout, in ``../shared``; without them the
test is skipped.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHECKER = ROOT.parent / "shared" / "tools" / "check_citations.py"


def test_every_citation_of_the_notes_is_in_the_notes():
    if not CHECKER.is_file() or not (CHECKER.parent.parent / "notes" / "chapter6.md").is_file():
        pytest.skip(f"needs the notes and {CHECKER} beside the checkout")
    done = subprocess.run([sys.executable, str(CHECKER), str(ROOT)], capture_output=True,
                          text=True, timeout=120)
    summary = re.search(r"(\d+) citations checked, (\d+) not found", done.stdout)
    assert summary, done.stdout + done.stderr
    checked, missing = map(int, summary.groups())
    assert checked > 100, done.stdout  # the checker still finds the citations
    assert missing == 0 and done.returncode == 0, done.stdout
