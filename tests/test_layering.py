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


def imports_of(package: str) -> dict[str, set[str]]:
    """module path -> top-level names it imports (at any depth of the module)."""
    out = {}
    for path in sorted((REPO / package).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        out[str(path.relative_to(REPO))] = names
    return out


@pytest.mark.parametrize("package", ["ticketstream", "schemas"])
def test_the_core_and_the_schemas_import_no_shell(package):
    offenders = {
        path: sorted(names & (SHELL_LIBRARIES | {"streams", "workers"}))
        for path, names in imports_of(package).items()
        if names & (SHELL_LIBRARIES | {"streams", "workers"})
    }
    assert offenders == {}


def test_streams_import_no_workers():
    offenders = {path: "workers" for path, names in imports_of("streams").items() if "workers" in names}
    assert offenders == {}


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
