"""`.ci/deps-audit` (pip-audit over requirements.lock in `make test`): findings printed, an unreachable service one
line, and neither fails the build. A stand-in pip-audit plays each answer."""
import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / ".ci" / "deps-audit"
ANSWERS = {
    "clean": ("No known vulnerabilities found\n", 0),
    "found": ("Name    Version ID                  Fix Versions\n"
              "example 1.0     GHSA-xxxx-yyyy-zzzz 1.1\n"
              "Found 1 known vulnerability in 1 package\n", 1),
    "offline": ("Traceback (most recent call last):\n  File \"x.py\", line 1, in send\n"
                "requests.exceptions.ConnectionError: Failed to resolve 'api.osv.dev'\n", 1),
}


@pytest.mark.parametrize("answer", sorted(ANSWERS))
def test_findings_are_printed_and_an_unreachable_service_is_one_line(tmp_path, answer):
    text, code = ANSWERS[answer]
    (tmp_path / "answer.txt").write_text(text)
    fake = tmp_path / "pip-audit"
    fake.write_text(f'#!/usr/bin/env bash\ncat "{tmp_path / "answer.txt"}"\nexit {code}\n')
    fake.chmod(0o755)
    proc = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env={**os.environ, "BIN": str(tmp_path)})
    assert proc.returncode == 0
    lines = proc.stdout.strip().splitlines()
    if answer == "clean":
        assert lines == ["pip-audit (pypi): no known vulnerabilities in requirements.lock"]
    elif answer == "found":
        assert lines[0].startswith("pip-audit (pypi): known vulnerabilities") and "GHSA-xxxx-yyyy-zzzz" in proc.stdout
    else:
        assert lines == ["pip-audit (pypi): vulnerability service unreachable or failed; requirements.lock not checked "
                         "(requests.exceptions.ConnectionError: Failed to resolve 'api.osv.dev')"]
