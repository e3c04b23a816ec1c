"""Built-in pure-torch models (no torchvision): a U-Net and a temporal U-Net for segmentation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from geoxr.errors import ConfigError

__all__ = ["TemporalUNet", "UNet"]


def _double_conv(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """A U-Net: ``depth`` down/up stages, channels doubling from ``width``.

    Any number of input bands; any input size (padded internally to a multiple of
    ``2**depth`` and cropped back). Outputs logits ``(N, num_classes, H, W)``.

    Parameters
    ----------
    in_channels : int
        Bands of the input.
    num_classes : int
        Output channels (class logits).
    width : int
        Channels of the first stage.
    depth : int
        Number of down-sampling stages.

    Examples
    --------
    >>> model = UNet(6, 8, width=8, depth=2)
    >>> model(torch.zeros(2, 6, 37, 50)).shape
    torch.Size([2, 8, 37, 50])
    """

    def __init__(self, in_channels: int, num_classes: int, *, width: int = 32, depth: int = 3):
        super().__init__()
        if in_channels < 1 or num_classes < 1 or width < 1 or depth < 0:
            raise ConfigError(
                f"UNet needs in_channels, num_classes, width >= 1 and depth >= 0, got "
                f"in_channels={in_channels}, num_classes={num_classes}, width={width}, "
                f"depth={depth}."
            )
        self.depth = depth
        chans = [width * 2**i for i in range(depth + 1)]
        self.stem = _double_conv(in_channels, chans[0])
        self.down = nn.ModuleList(_double_conv(chans[i], chans[i + 1]) for i in range(depth))
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(chans[i + 1], chans[i], 2, stride=2) for i in reversed(range(depth))
        )
        self.merge = nn.ModuleList(
            _double_conv(2 * chans[i], chans[i]) for i in reversed(range(depth))
        )
        self.head = nn.Conv2d(chans[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits for a batch ``(N, C, H, W)``."""
        h, w = x.shape[-2:]
        m = 2**self.depth
        pad_h, pad_w = (-h) % m, (-w) % m
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        skips = [self.stem(x)]
        for down in self.down:
            skips.append(down(F.max_pool2d(skips[-1], 2)))
        y = skips.pop()
        for up, merge in zip(self.up, self.merge, strict=True):
            y = merge(torch.cat([up(y), skips.pop()], dim=1))
        return self.head(y)[..., :h, :w]


class TemporalUNet(nn.Module):
    """A shared per-date U-Net encoder with pooling over time, for ``(N, T, C, H, W)`` input.

    Each date goes through the same U-Net (weights shared across dates) to
    ``width`` feature channels; features are pooled over time (mean, max, or
    attention: a learnt per-pixel softmax weight for each date) and a 1x1
    convolution gives the class logits ``(N, num_classes, H, W)``. Works for any
    number of dates.

    Parameters
    ----------
    in_channels : int
        Bands per date.
    num_classes : int
        Output channels (class logits).
    width, depth : int
        As for :class:`UNet`.
    pooling : {'attention', 'mean', 'max'}
        How dates are combined.

    Examples
    --------
    >>> model = TemporalUNet(4, 3, width=8, depth=2)
    >>> model(torch.zeros(2, 5, 4, 32, 40)).shape
    torch.Size([2, 3, 32, 40])
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        width: int = 32,
        depth: int = 3,
        pooling: str = "attention",
    ):
        super().__init__()
        if pooling not in ("attention", "mean", "max"):
            raise ConfigError(f"pooling must be 'attention', 'mean' or 'max', got {pooling!r}.")
        self.pooling = pooling
        self.encoder = UNet(in_channels, width, width=width, depth=depth)
        self.score = nn.Conv2d(width, 1, 1)
        self.head = nn.Conv2d(width, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits for a batch of time series ``(N, T, C, H, W)``."""
        if x.ndim != 5:
            raise ValueError(
                f"TemporalUNet takes (N, T, C, H, W) input, got shape {tuple(x.shape)}."
            )
        n, t = x.shape[:2]
        features = F.relu(self.encoder(x.flatten(0, 1)))
        features = features.unflatten(0, (n, t))
        if self.pooling == "mean":
            pooled = features.mean(dim=1)
        elif self.pooling == "max":
            pooled = features.amax(dim=1)
        else:
            weights = torch.softmax(self.score(features.flatten(0, 1)).unflatten(0, (n, t)), dim=1)
            pooled = (weights * features).sum(dim=1)
        return self.head(pooled)
