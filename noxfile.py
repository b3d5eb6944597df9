"""Sessions for every supported CPython: ``nox`` runs the test suite on each
(against the package installed into the session's virtual environment, not
the source tree), ``nox -s smoke`` only builds, imports and makes one GET.

nox looks for the interpreters as python3.X on PATH; with pyenv:

    PATH="$(printf '%s/bin:' ~/.pyenv/versions/3.*)$PATH" nox

"""

import nox

PYTHONS = ["3.9", "3.10", "3.11", "3.12", "3.13", "3.14"]

nox.options.sessions = ["tests"]
nox.options.default_venv_backend = "venv"


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The whole suite, as the README runs it, on one interpreter."""
    session.install(".[test]")
    session.run("python", "-m", "pytest", "-q", "-p", "no:cacheprovider", *session.posargs)


@nox.session(python=PYTHONS)
def smoke(session: nox.Session) -> None:
    """Build and install the package, import it, one GET against a local server."""
    session.install(".")
    session.run("python", "scripts/smoke.py")
