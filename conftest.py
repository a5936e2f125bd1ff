"""Repository-wide pytest set-up: checked notebook outputs compare decimals within each cell's stated
tolerance (see tests/nbval_tolerance.py). Fixtures for the unit tests live in tests/conftest.py."""

import os

pytest_plugins = ("tests.nbval_tolerance",)

# nbval runs notebooks with no front end to draw widgets: the explorer (ttame_lib.viz.explorer) then
# draws static figures, as under papermill. Kernels inherit this environment.
os.environ.setdefault("TTAME_STATIC_FIGURES", "1")
