"""Pixel windows, georeferenced grids and window plans.

This package owns every pixel <-> map conversion in geoxr; other modules ask it.
"""

from geoxr.grid._aoi import AOIMode, aoi_geometries, aoi_union, filter_windows, polygonal_part
from geoxr.grid._blocks import block_chunks, block_windows, window_of_block
from geoxr.grid._plan import ChipGrid, PadDirection, int_pair, random_windows, sliding_windows
from geoxr.grid._tiles import TileLayout, windows_share_tiles
from geoxr.grid._window import Grid, Window, non_integers

__all__ = [
    "AOIMode",
    "ChipGrid",
    "Grid",
    "PadDirection",
    "TileLayout",
    "Window",
    "aoi_geometries",
    "aoi_union",
    "block_chunks",
    "block_windows",
    "filter_windows",
    "int_pair",
    "non_integers",
    "polygonal_part",
    "random_windows",
    "sliding_windows",
    "window_of_block",
    "windows_share_tiles",
]
