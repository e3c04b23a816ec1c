"""Doctest namespace: np, xr, geoxr and DATA (the shared real data); a temporary cwd."""

import os
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import geoxr
import geoxr.testing

DATA = os.environ.get("GEOXR_DATA", str(Path(__file__).resolve().parent.parent / "shared" / "data"))


@pytest.fixture(autouse=True)
def add_standard_imports(doctest_namespace, tmp_path, monkeypatch):
    doctest_namespace.update(np=np, xr=xr, geoxr=geoxr, DATA=DATA)
    np.random.seed(0)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def data_dir():
    """The shared real data; missing data fails under CI and skips elsewhere."""
    if not Path(DATA, "README.md").is_file():
        message = f"Test data not found at {DATA!r}; set GEOXR_DATA to the shared data folder."
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return DATA
