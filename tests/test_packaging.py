"""Packaging: the version the package reports and sends, the wheel matrix
that pyproject.toml gives cibuildwheel, and the benchmark package importing
without the ``bench`` extra.

The wheel itself (its files, the OpenSSL it bundles, an install with no
compiler, no OpenSSL headers and no network) is checked by
``scripts/check_wheel.sh``, which runs this whole suite against it.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import fasttransport as ft

# the project's files beside tests/: a checkout, an unpacked sdist, or the
# copy the wheel checks run the suite from (pyproject.toml, no src/)
PROJECT = Path(__file__).resolve().parent.parent
PYPROJECT = PROJECT / "pyproject.toml"

CPYTHONS = ["cp39", "cp310", "cp311", "cp312", "cp313", "cp314"]


def _written_version() -> str:
    text = Path(ft.__file__).with_name("_version.py").read_text(encoding="utf-8")
    m = re.search(r'^__version__ = "([^"]+)"$', text, re.M)
    assert m, text
    return m.group(1)


def test_version_is_the_one_written_in_version_py_and_sent(http_server):
    written = _written_version()
    assert re.fullmatch(r"\d+\.\d+\.\d+((a|b|rc)\d+)?(\.dev\d+)?", written), written
    assert ft.__version__ == written
    r = ft.get(http_server.url("/"))
    assert r.status_code == 200
    (_, req), = http_server.requests
    agents = [v for n, v in req.headers if n.lower() == "user-agent"]
    assert agents == [f"fasttransport/{written}"]


def test_the_build_reads_the_version_from_the_same_file():
    try:
        dist = importlib.metadata.distribution("fasttransport")
        here = Path(str(dist.locate_file("fasttransport/__init__.py"))).resolve()
    except importlib.metadata.PackageNotFoundError:
        dist = None
    if dist is not None and here == Path(ft.__file__).resolve():
        # an installed wheel: its metadata says what the module says
        assert dist.version == ft.__version__
        return
    # a source checkout: pyproject.toml takes the version from _version.py
    text = PYPROJECT.read_text(encoding="utf-8")
    assert re.search(r'^dynamic = \["version"\]', text, re.M)
    assert 'input = "src/fasttransport/_version.py"' in text
    # the module imported is this checkout's, or a copy of it (the
    # sanitizer runs assemble one): its _version.py is the same file's text
    mine = Path(ft.__file__).with_name("_version.py").read_text(encoding="utf-8")
    assert mine == (PROJECT / "src/fasttransport/_version.py").read_text(encoding="utf-8")


needs_cibuildwheel = pytest.mark.skipif(
    sys.version_info < (3, 11), reason="cibuildwheel runs on Python 3.11 and newer")


def _identifiers(platform: str, **env: str) -> list[str]:
    p = subprocess.run(
        [sys.executable, "-m", "cibuildwheel", "--print-build-identifiers",
         "--platform", platform, str(PROJECT)],
        capture_output=True, text=True, timeout=300, env={**os.environ, **env})
    assert p.returncode == 0, p.stderr
    return p.stdout.split()


def _matrix(platform_tags) -> set[str]:
    return {f"{py}-{tag}" for py in CPYTHONS for tag in platform_tags}


MANYLINUX = ("manylinux_x86_64", "manylinux_aarch64")


@needs_cibuildwheel
def test_linux_wheel_matrix():
    assert set(_identifiers("linux")) == _matrix(MANYLINUX)


@needs_cibuildwheel
@pytest.mark.parametrize("platform, on, off", [
    ("linux", MANYLINUX, ("musllinux_x86_64", "musllinux_aarch64")),
    ("macos", (), ("macosx_x86_64", "macosx_arm64")),
    ("windows", (), ("win_amd64",)),
])
def test_platforms_configured_but_off(platform, on, off):
    # off until the native core is ported (README, "Platforms and packaging")
    assert set(_identifiers(platform)) == _matrix(on)
    # what the configuration builds once the skip entries go (free-threaded
    # builds stay out)
    assert set(_identifiers(platform, CIBW_SKIP="cp3??t-*")) == _matrix(on + off)


def _bench_extra_imports() -> list[str]:
    text = PYPROJECT.read_text(encoding="utf-8")
    block = re.search(r"^bench = \[(.*?)\]", text, re.M | re.S)
    assert block, "no bench extra in pyproject.toml"
    return re.findall(r'"([A-Za-z0-9_]+)', block.group(1))


def test_bench_imports_without_the_bench_extra():
    blocked = _bench_extra_imports()
    assert {"pycurl", "aiohttp", "matplotlib"} <= set(blocked)
    script = textwrap.dedent(f"""
        import importlib, importlib.abc, pkgutil, sys

        BLOCKED = {blocked!r}

        class NotInstalled(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)

        sys.meta_path.insert(0, NotInstalled())
        import fasttransport.bench as bench
        names = [m.name for m in pkgutil.iter_modules(bench.__path__, "fasttransport.bench.")
         if m.name != "fasttransport.bench.__main__"]  # that one runs the suite
        for name in names:
            importlib.import_module(name)
        assert not set(sys.modules) & set(BLOCKED), set(sys.modules) & set(BLOCKED)
        print(len(names))
        from fasttransport.__main__ import main
        sys.argv = ["fasttransport", "bench", "--help"]
        main()
    """)
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    count, _, help_text = p.stdout.partition("\n")
    assert int(count) >= 10
    assert help_text.startswith("usage: fasttransport bench")
