import pytest
import torch

import geoxr


@pytest.mark.parametrize("bands", [1, 3, 6, 13])
@pytest.mark.parametrize("shape", [(64, 64), (37, 91)])
def test_unet_any_bands_any_size(bands, shape):
    model = geoxr.UNet(bands, 5, width=4, depth=3)
    out = model(torch.zeros(2, bands, *shape))
    assert out.shape == (2, 5, *shape)


def test_unet_rejects_bad_sizes():
    with pytest.raises(ValueError, match="in_channels"):
        geoxr.UNet(0, 3)
    with pytest.raises(
        geoxr.ConfigError,
        match=r"UNet needs .* got in_channels=6, num_classes=0, width=32, depth=3",
    ):
        geoxr.UNet(6, 0)


def test_temporal_unet_rejects_unknown_pooling():
    with pytest.raises(
        geoxr.ConfigError, match=r"pooling must be 'attention', 'mean' or 'max', got 'sum'"
    ):
        geoxr.TemporalUNet(4, 3, pooling="sum")
