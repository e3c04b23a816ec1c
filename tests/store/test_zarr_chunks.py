"""ChunkFiles writes the chunks zarr itself would write, byte for byte."""

import numpy as np
import pytest
import rasterio
import zarr
from rasterio.windows import Window
from zarr.codecs import BloscCodec, BytesCodec, GzipCodec, ZstdCodec

from geoxr.errors import IncompleteOutputError
from geoxr.store._zarr_chunks import ChunkFiles

# (dtype, serializer, compressors, fill value): the label stores' arrays and their variants.
LAYOUTS = {
    "scores": (
        "float32",
        "auto",
        (BloscCodec(cname="lz4", clevel=1, shuffle="bitshuffle"),),
        np.nan,
    ),
    "class_ids": ("uint8", "auto", "auto", 0),  # zarr's default compressor (zstd)
    "raw": ("int16", "auto", None, -1),
    "big_endian_byte_shuffle": (
        "float64",
        BytesCodec(endian="big"),
        (BloscCodec(cname="zstd", clevel=3, shuffle="shuffle"),),
        0.0,
    ),
    "zstd_checksum": ("uint16", "auto", (ZstdCodec(level=5, checksum=True),), 0),
}


def _array(path, dtype, serializer, compressors, fill_value):
    return zarr.create_array(
        str(path),
        shape=(2, 70, 90),
        chunks=(2, 32, 32),
        dtype=dtype,
        serializer=serializer,
        compressors=compressors,
        fill_value=fill_value,
        config={"write_empty_chunks": True},
    )


def _chunk_files(store):
    return {
        p.relative_to(store): p.read_bytes()
        for p in sorted(store.rglob("*"))
        if p.is_file() and p.name != "zarr.json"
    }


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_chunks_equal_zarrs_own_byte_for_byte(tmp_path, layout, rgb_byte):
    dtype, serializer, compressors, fill_value = LAYOUTS[layout]
    # Real imagery: two bands of a GeoTIFF (70 x 90 pixels: edge chunks are partial).
    with rasterio.open(rgb_byte) as src:
        values = src.read((1, 2), window=Window(400, 300, 90, 70)).astype(dtype) * 3 - 5
    values[0, 40:, :20] = fill_value  # a region equal to the fill value is written too
    by_zarr = _array(tmp_path / "zarr.zarr", dtype, serializer, compressors, fill_value)
    by_geoxr = _array(tmp_path / "geoxr.zarr", dtype, serializer, compressors, fill_value)
    files = ChunkFiles(by_geoxr)
    for row in range(3):
        for col in range(3):
            part = (slice(None), slice(32 * row, 32 * row + 32), slice(32 * col, 32 * col + 32))
            by_zarr[part] = values[part]
            files.write((0, row, col), values[part])
    zarr_chunks, geoxr_chunks = (
        _chunk_files(tmp_path / name) for name in ("zarr.zarr", "geoxr.zarr")
    )
    assert len(zarr_chunks) == 9 and geoxr_chunks == zarr_chunks  # no temporary file left
    assert np.nanstd(values) > 10  # real, varied pixels
    for chunk, data in zarr_chunks.items():
        assert geoxr_chunks[chunk] == data, chunk
    back = zarr.open_array(str(tmp_path / "geoxr.zarr"), mode="r")[...]
    np.testing.assert_array_equal(back, values)


def test_arrays_it_cannot_write_are_refused_naming_them(tmp_path):
    array = _array(tmp_path / "gz.zarr", "uint8", "auto", (GzipCodec(),), 0)
    with pytest.raises(
        IncompleteOutputError,
        match=r"gz\.zarr.*GzipCodec.*blosc, zstd or nothing.*new store, or pass resume=False",
    ):
        ChunkFiles(array)
    two = _array(tmp_path / "two.zarr", "uint8", "auto", (ZstdCodec(), GzipCodec()), 0)
    with pytest.raises(IncompleteOutputError, match=r"two\.zarr.*at most one compressor"):
        ChunkFiles(two)
    v2 = zarr.create_array(str(tmp_path / "v2.zarr"), shape=(4,), dtype="uint8", zarr_format=2)
    in_memory = zarr.create_array(zarr.storage.MemoryStore(), shape=(4,), dtype="uint8")
    for array in (v2, in_memory):
        with pytest.raises(
            IncompleteOutputError, match="not a Zarr v3 array of a local directory store"
        ):
            ChunkFiles(array)


def test_a_store_given_by_a_relative_path_is_written_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    files = ChunkFiles(_array("relative.zarr", "uint8", "auto", "auto", 0))
    monkeypatch.chdir(tmp_path.parent)  # as a worker started elsewhere
    files.write((0, 1, 2), np.full((2, 32, 26), 9, np.uint8))
    back = zarr.open_array(str(tmp_path / "relative.zarr"), mode="r")[...]
    assert (back[:, 32:64, 64:90] == 9).all() and back.sum() == 9 * 2 * 32 * 26


def test_a_failed_write_leaves_neither_chunk_nor_temporary_file(tmp_path):
    array = _array(tmp_path / "a.zarr", "uint8", "auto", "auto", 0)
    files = ChunkFiles(array)
    chunk = tmp_path / "a.zarr" / "c" / "0" / "1" / "2"
    chunk.mkdir(parents=True)  # the rename onto the chunk's path fails
    with pytest.raises(OSError):
        files.write((0, 1, 2), np.ones((2, 32, 26), np.uint8))
    assert [p.name for p in chunk.parent.iterdir()] == ["2"] and not any(chunk.iterdir())
