"""Whole chunks of a Zarr v3 array in a local store, encoded and written straight to their files.

A label store's block tasks each write whole chunks (a dask block is one chunk of
every array). Through ``zarr.Array.__setitem__`` each write goes through zarr's
asyncio machinery: the calling thread hands the chunk to zarr's event loop, which
hands encoding and the file write to a thread pool and wakes the caller again.
For the 16 blocks of a 4000 x 4000 scene that machinery held the GIL for about
0.15-0.2 s, time the other block tasks' Python work waited for. :class:`ChunkFiles` encodes a
chunk in the calling thread with the array's own codecs (as zarr builds them, from
numcodecs) and writes it where the Zarr v3 spec puts it: the key its chunk key
encoding gives, as a path below the array's directory. Like zarr's local store it
writes a temporary file and renames it, so a chunk file is whole or absent; the
files then go to disk a little behind the writer (:mod:`geoxr.store._write_behind`).
"""

from __future__ import annotations

from pathlib import Path

import numcodecs
import numpy as np
import zarr
from numcodecs.abc import Codec
from zarr.codecs import BloscCodec, BytesCodec, ZstdCodec
from zarr.core.metadata import ArrayV3Metadata
from zarr.storage import LocalStore

from geoxr._files import write_atomically
from geoxr.errors import IncompleteOutputError
from geoxr.store._write_behind import write_behind

__all__ = ["PARTIAL_SUFFIX", "ChunkFiles"]

#: The end of a chunk's temporary file name (write_atomically's, for a chunk key without a
#: suffix; zarr's local store names its own alike).
PARTIAL_SUFFIX = ".partial"

_SHUFFLES = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}
# What to do about an array of a label store that geoxr did not lay out itself.
_NOT_GEOXRS = "Write the labels to a new store, or pass resume=False to replace this one."


def _numcodecs_compressor(codec: object, label: str) -> Codec:
    """The numcodecs codec zarr itself encodes with for a Zarr v3 compressor."""
    if isinstance(codec, BloscCodec):
        return numcodecs.Blosc(
            cname=codec.cname.value,
            clevel=codec.clevel,
            shuffle=_SHUFFLES[codec.shuffle.value],
            blocksize=codec.blocksize,
            typesize=codec.typesize,
        )
    if isinstance(codec, ZstdCodec):
        return numcodecs.Zstd(level=codec.level, checksum=codec.checksum)
    raise IncompleteOutputError(
        f"Zarr array {label!r} is compressed with {codec!r}; geoxr writes chunks "
        f"compressed with blosc, zstd or nothing. {_NOT_GEOXRS}"
    )


class ChunkFiles:
    """Writes whole chunks of one Zarr v3 array of a local store straight to their files.

    Parameters
    ----------
    array : zarr.Array
        An array of a local (directory) store with a regular chunk grid and the
        codecs ``bytes`` followed by at most one of ``blosc`` or ``zstd``.

    Examples
    --------
    >>> import tempfile
    >>> store = tempfile.mkdtemp()
    >>> array = zarr.create_array(store, shape=(3, 5), chunks=(2, 4), dtype="uint8", fill_value=0)
    >>> ChunkFiles(array).write((1, 1), np.full((1, 1), 7, np.uint8))
    >>> zarr.open_array(store, mode="r")[...].tolist()
    [[0, 0, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 7]]
    """

    def __init__(self, array: zarr.Array) -> None:
        metadata, store = array.metadata, array.store
        label = str(array.store_path)
        if not isinstance(metadata, ArrayV3Metadata) or not isinstance(store, LocalStore):
            raise IncompleteOutputError(
                f"{label!r} is not a Zarr v3 array of a local directory store. {_NOT_GEOXRS}"
            )
        serializer, compressors = array.serializer, array.compressors
        if array.filters or not isinstance(serializer, BytesCodec) or len(compressors) > 1:
            raise IncompleteOutputError(
                f"Zarr array {label!r} has the codecs {metadata.codecs}; geoxr writes chunks "
                f"as plain bytes, then at most one compressor. {_NOT_GEOXRS}"
            )
        big_endian = serializer.endian is not None and serializer.endian.value == "big"
        self.dtype = array.dtype.newbyteorder(">" if big_endian else "<")
        self.chunk_shape = array.chunks  # zarr 3 chunk grids are regular
        self.fill_value = array.fill_value
        # Absolute: a distributed worker may run in another working directory.
        self.directory = Path(store.root, array.path).absolute()
        self._chunk_key = metadata.chunk_key_encoding
        self._compressor = _numcodecs_compressor(compressors[0], label) if compressors else None

    def write(self, coords: tuple[int, ...], values: np.ndarray) -> None:
        """Write the chunk at ``coords`` (chunk indices) holding ``values``.

        ``values`` is the chunk's part inside the array: the whole chunk, or less
        where the chunk reaches past the array's end (the rest gets the fill value,
        as zarr writes it).
        """
        if values.shape != self.chunk_shape:
            chunk = np.full(self.chunk_shape, self.fill_value, self.dtype)
            chunk[tuple(slice(0, n) for n in values.shape)] = values
        else:
            chunk = np.ascontiguousarray(values, self.dtype)
        data = chunk.data if self._compressor is None else self._compressor.encode(chunk)
        path = self.directory / self._chunk_key.encode_chunk_key(coords)
        path.parent.mkdir(parents=True, exist_ok=True)

        def write(partial: Path) -> None:
            with open(partial, "wb") as f:
                f.write(data)
                f.flush()
                write_behind().written(path, f.fileno(), f.tell())

        write_atomically(path, write)
