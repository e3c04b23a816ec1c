"""Fixtures of the read tests: a real HTTP server on loopback that serves files with Range
requests and counts bytes, and RGB.byte.tif split into halves."""

import http.server
import os
import re
import threading
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.windows


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves ``directory`` with HEAD, GET and single-range GET (206); counts body bytes."""

    sent = 0
    lock = threading.Lock()

    def log_message(self, *args):  # keep test output quiet
        pass

    def _count(self, n):
        with _RangeHandler.lock:
            _RangeHandler.sent += n

    def send_head(self):
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return None
        size = path.stat().st_size
        match = re.match(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        start, end = 0, size - 1
        if match:
            start = int(match.group(1))
            end = min(int(match.group(2)) if match.group(2) else size - 1, size - 1)
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        else:
            self.send_response(200)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        self._range = (start, end)
        return path.open("rb")

    def copyfile(self, source, outputfile):
        start, end = self._range
        source.seek(start)
        remaining = end - start + 1
        while remaining > 0:
            chunk = source.read(min(65536, remaining))
            if not chunk:
                break
            outputfile.write(chunk)
            self._count(len(chunk))
            remaining -= len(chunk)


@pytest.fixture(scope="session")
def http_data(data_dir):
    """``(base URL, byte counter)`` of a loopback HTTP server over the shared data folder."""
    handler = lambda *a, **kw: _RangeHandler(*a, directory=os.fspath(data_dir), **kw)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    class Counter:
        @staticmethod
        def reset():
            _RangeHandler.sent = 0

        @staticmethod
        def bytes_sent():
            return _RangeHandler.sent

    yield f"http://127.0.0.1:{server.server_address[1]}", Counter
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def rgb_byte_halves(rgb_byte, tmp_path_factory):
    """The left and right halves of RGB.byte.tif, written as GeoTIFFs with rasterio."""
    out_dir = tmp_path_factory.mktemp("halves")
    with rasterio.open(rgb_byte) as ds:
        profile = ds.profile
        half = ds.width // 2
        paths = []
        for name, window in (
            ("left", rasterio.windows.Window(0, 0, half, ds.height)),
            ("right", rasterio.windows.Window(half, 0, ds.width - half, ds.height)),
        ):
            out = out_dir / f"{name}.tif"
            transform = rasterio.windows.transform(window, ds.transform)
            meta = dict(profile, width=window.width, height=window.height, transform=transform)
            with rasterio.open(out, "w", **meta) as dst:
                dst.write(ds.read(window=window))
            paths.append(out)
    return paths


@pytest.fixture
def rgb_byte_masked(rgb_byte, tmp_path):
    """RGB.byte.tif without its nodata, with an internal mask hiding columns 300-339.

    Returns ``(path, values)``: the file and its pixels.
    """
    with rasterio.open(rgb_byte) as src:
        profile, values = src.profile | {"nodata": None}, src.read()
    mask = np.full(values.shape[1:], 255, np.uint8)
    mask[:, 300:340] = 0
    path = tmp_path / "masked.tif"
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(path, "w", **profile) as dst:
        dst.write(values)
        dst.write_mask(mask)
    return path, values
