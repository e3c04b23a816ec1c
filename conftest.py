"""Doctest namespace: np, xr, geoxr and DATA (the shared real data); a temporary cwd."""

import os
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import geoxr
import geoxr.testing

DATA = os.environ.get(
    "GEOXR_DATA", str(Path(__file__).resolve().parent.parent / "shared" / "data")
)


@pytest.fixture(autouse=True)
def add_standard_imports(doctest_namespace, tmp_path, monkeypatch):
    doctest_namespace.update(np=np, xr=xr, geoxr=geoxr, DATA=DATA)
    np.random.seed(0)
    monkeypatch.chdir(tmp_path)
