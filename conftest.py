"""Repository-wide pytest set-up: checked notebook outputs compare decimals within each cell's stated
tolerance (see tests/nbval_tolerance.py). Fixtures for the unit tests live in tests/conftest.py."""

pytest_plugins = ("tests.nbval_tolerance",)
