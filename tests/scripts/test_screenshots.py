"""scripts/screenshots.py on a tiny subset: PNGs at both widths, listed in index.html."""

import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import chromium_path, require_component

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]


def png_width(path: Path) -> int:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">I", header[16:20])[0]


def test_screenshots_of_one_page_at_both_widths(tmp_path):
    require_component(chromium_path() is not None, "no Chromium on this machine")
    # A separate process: the script sets up Django on its own throwaway database.
    result = subprocess.run(
        [
            sys.executable,
            "scripts/screenshots.py",
            "--only",
            "coach-tasks",
            "--sets",
            "normal",
            "--out",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 screenshots in" in result.stdout
    for width in (1280, 375):
        shot = tmp_path / str(width) / "normal-coach-tasks.png"
        assert png_width(shot) == width
    index = (tmp_path / "index.html").read_text()
    assert "1280/normal-coach-tasks.png" in index and "375/normal-coach-tasks.png" in index
