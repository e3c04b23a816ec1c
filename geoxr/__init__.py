"""geoxr: Raster Vision's workflow on the pangeo stack."""
