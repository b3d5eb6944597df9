"""The types users get: the typed example of the public API runs (against a
loopback server), and the stubs of the Cython modules match the extension
as built (mypy's stubtest). ``mypy`` itself (strict, the package and the
example) runs in CI: .ci/run."""

from __future__ import annotations

import importlib.util
import os
import site
import subprocess
import sys
from pathlib import Path

import fasttransport

TYPING = Path(__file__).parent / "typing"


def test_public_api_example_runs(http_server):
    spec = importlib.util.spec_from_file_location("public_api_example", TYPING / "public_api.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.run_all(http_server.base_url)


def test_stubs_match_the_extension_modules():
    # the stubs shipped next to the modules imported here (the source tree
    # or an installed package), checked against those very modules
    package_parent = str(Path(fasttransport.__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [package_parent, os.environ.get("PYTHONPATH")])))
    if package_parent not in {str(Path(p).resolve()) for p in site.getsitepackages()}:
        env["MYPYPATH"] = package_parent    # (mypy finds an installed package itself)
    proc = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "fasttransport._core", "fasttransport._parser",
         "--allowlist", str(TYPING / "stubtest_allowlist.txt")],
        capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Success: no issues found in 2 modules" in proc.stdout
