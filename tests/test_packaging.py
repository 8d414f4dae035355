"""What a user installing the package sees: a version to quote, and the license the metadata names."""

import subprocess
import sys
from importlib.metadata import metadata

from tests.harness import REPO
from ticketstream import __version__


def test_version_is_printed_from_the_installed_distribution():
    result = subprocess.run(
        [sys.executable, "-m", "workers.cli", "--version"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"ticketstream {__version__}"
    assert metadata("ticketstream")["Version"] == __version__


def test_the_license_is_an_spdx_expression_with_its_text_shipped():
    meta = metadata("ticketstream")
    assert meta["License-Expression"] == "Apache-2.0"
    assert "LICENSE" in (meta.get_all("License-File") or [])
    text = (REPO / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text and "END OF TERMS AND CONDITIONS" in text
