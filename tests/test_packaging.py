"""What a user installing the package sees: a version to quote, and the license the metadata names."""

import shutil
import subprocess
import sys
import sysconfig
import zipfile
from importlib.metadata import metadata
from pathlib import Path

from tests.harness import REPO
from ticketstream import __version__


def test_version_is_printed_from_the_installed_distribution():
    result = subprocess.run(
        [sys.executable, "-m", "ticketstream.workers.cli", "--version"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
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


def test_the_wheel_installs_one_package_that_runs_from_a_clean_virtualenv(tmp_path: Path):
    """The wheel puts exactly one import package into site-packages (`ticketstream`, with the
    top-level `streams/`, `workers/` and `schemas/` folders inside it), and the installed command
    works from anywhere without the source tree: `--help` and an offline `classify`.

    The clean virtualenv gets the wheel alone; its dependencies are borrowed from the project's
    virtualenv by a path entry (so the test needs no package index), which does not carry the
    project's own editable install along (.pth files there are not processed)."""
    # Built from a copy of the project's files: setuptools builds in the source tree's build/,
    # whose leftovers (a deleted module) would otherwise end up in the wheel, and leaves it behind.
    source = tmp_path / "source"
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout
    for name in filter(None, listed.decode().split("\0")):
        origin, copy = REPO / name, source / name
        copy.parent.mkdir(parents=True, exist_ok=True)
        if origin.is_symlink():
            copy.symlink_to(origin.readlink())
        elif origin.is_file():
            shutil.copy2(origin, copy)
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheels),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = wheels.glob("ticketstream-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        tops = {name.split("/")[0] for name in archive.namelist() if not name.split("/")[0].endswith(".dist-info")}
    assert tops == {"ticketstream"}

    venv = tmp_path / "clean"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    borrowed = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "borrowed_dependencies.pth").write_text("\n".join(sorted(borrowed)) + "\n", encoding="utf-8")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8"}

    def run_there(*command: object, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """A command in the clean virtualenv, from a directory outside the source tree."""
        return subprocess.run(
            [str(c) for c in command], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=timeout
        )

    where = run_there(
        python, "-c", "import ticketstream, ticketstream.workers.cli as cli; print(ticketstream.__file__, cli.__file__)"
    )
    assert where.returncode == 0, where.stderr
    assert all(path.startswith(str(site)) for path in where.stdout.split()), where.stdout
    for generic in ("streams", "workers", "schemas"):
        probe = run_there(python, "-c", f"import {generic}")
        assert probe.returncode != 0, f"the wheel installed a top-level `{generic}` module"

    helped = run_there(venv / "bin" / "ticketstream", "--help")
    assert helped.returncode == 0, helped.stderr
    assert "classify" in helped.stdout and "worker" in helped.stdout
    (elsewhere / "in.jsonl").write_text('{"content": "家里宽带断网三天了，一直上不了网"}\n', encoding="utf-8")
    classified = run_there(venv / "bin" / "ticketstream", "classify", "in.jsonl", timeout=120)
    assert classified.returncode == 0, classified.stderr
    assert "technical.network_quality" in classified.stdout and "model_version" in classified.stdout, classified.stdout
