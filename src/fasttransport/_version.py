"""The package's version, written here only: the build reads it from this
file (pyproject.toml, scikit-build-core's regex provider) and the package
imports it, so a source checkout reports the same version as a wheel."""

__version__ = "0.1.0"
