"""The architecture, checked: the functional core and the wire formats import no Faust, no Kafka
client and no shell; the Faust shell (`streams/`) imports no process code (`workers/`); the
offline tools (`classify`, `replay`, `triage evaluate`) run without Faust."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import REPO

SHELL_LIBRARIES = {"faust", "aiokafka", "kafka", "mode"}
SHELL = {"ticketstream.streams", "ticketstream.workers"}
"""The shell's folders (top-level `streams/` and `workers/`, installed inside `ticketstream`)."""


def imports_of(folder: str, skip: tuple[str, ...] = ()) -> dict[str, set[str]]:
    """module path -> what it imports, as top-level names (third-party) or as
    `ticketstream.<folder>` (the project's own parts), at any depth of the module."""
    out = {}
    for path in sorted((REPO / folder).rglob("*.py")):
        if path.relative_to(REPO / folder).parts[0] in skip:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        modules = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                modules.add(node.module)
        out[str(path.relative_to(REPO))] = {
            ".".join(m.split(".")[:2]) if m.startswith("ticketstream.") else m.split(".")[0] for m in modules
        }
    return out


@pytest.mark.parametrize("folder", ["ticketstream", "schemas"])
def test_the_core_and_the_schemas_import_no_shell(folder):
    # ticketstream/streams, /workers and /schemas are the top-level folders linked into the package
    offenders = {
        path: sorted(names & (SHELL_LIBRARIES | SHELL))
        for path, names in imports_of(folder, skip=("streams", "workers", "schemas")).items()
        if names & (SHELL_LIBRARIES | SHELL)
    }
    assert offenders == {}


def test_streams_import_no_workers():
    offenders = {path: "workers" for path, names in imports_of("streams").items() if "ticketstream.workers" in names}
    assert offenders == {}


def test_the_checks_above_see_the_imports():
    """Guards the guard: the parsing really finds the shell where it is used."""
    assert "ticketstream.streams" in imports_of("workers")["workers/app.py"]
    assert "faust" in imports_of("streams")["streams/intake.py"]


def test_offline_tools_do_not_load_faust(tmp_path: Path):
    line = '{"content": "家里宽带断网三天了"}\n'
    (tmp_path / "in.jsonl").write_text(line, encoding="utf-8")
    probe = (
        "import sys, contextlib, io\n"
        "from workers import cli\n"
        f"for argv in (['classify', {str(tmp_path / 'in.jsonl')!r}], ['replay', {str(tmp_path / 'in.jsonl')!r}],\n"
        f"             ['triage', 'evaluate', {str(tmp_path / 'in.jsonl')!r}]):\n"
        "    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
        "        cli.main(argv)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('faust', 'aiokafka', 'mode')))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
