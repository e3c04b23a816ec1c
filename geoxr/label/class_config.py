"""ClassConfig: class names, colours and the null (ignore) class."""

from __future__ import annotations

import colorsys
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from geoxr.errors import ClassConfigError
from geoxr.grid import non_integers

__all__ = ["ClassConfig"]

_PALETTE = [
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
]  # fmt: skip
_NULL_COLOR = (0, 0, 0)


def _default_colors(n: int) -> list[tuple[int, int, int]]:
    """``n`` distinct colours, none the null class's black: the palette, then golden-angle hues.

    The palette repeated past 10 classes: a colour then named two classes (an RGB
    label raster, ``get_color_to_class_id``).

    Examples
    --------
    >>> colors = _default_colors(300)
    >>> colors[:2], len(set(colors)), _NULL_COLOR in colors
    ([(31, 119, 180), (255, 127, 14)], 300, False)
    """
    colors, seen = list(_PALETTE[:n]), {*_PALETTE, _NULL_COLOR}
    k = 0
    while len(colors) < n:
        hue, saturation = (k * 0.6180339887498949) % 1.0, 0.45 + 0.4 * ((k // 5) % 2)
        value = 0.95 - 0.3 * ((k // 11) % 2)
        rgb = colorsys.hsv_to_rgb(hue, saturation, value)
        color = (round(rgb[0] * 255), round(rgb[1] * 255), round(rgb[2] * 255))
        if color not in seen:
            colors.append(color)
            seen.add(color)
        k += 1
    return colors


@dataclass(frozen=True)
class ClassConfig:
    """Class names (index = class id), RGB colours and the optional null class.

    The null class marks pixels to ignore: nodata, outside the AOI, unlabelled.
    Training ignores it; :meth:`ensure_null_class` adds one called ``"null"``
    when the config has none, as Raster Vision does.

    Parameters
    ----------
    names : sequence of str
        One name per class; the position is the class id.
    colors : sequence of (r, g, b) or str, optional
        One colour per class (RGB tuple or ``"#rrggbb"``); default a fixed palette.
    null_class : str, optional
        Name of the class that means "ignore"; must be one of ``names``. Without
        it, a class named ``"null"`` is the null class, as in Raster Vision.

    Examples
    --------
    >>> cc = ClassConfig(["background", "building"])
    >>> cc = cc.ensure_null_class()
    >>> cc.names, cc.null_class_id, len(cc)
    (('background', 'building', 'null'), 2, 3)
    >>> ClassConfig.from_dict(cc.to_dict()) == cc
    True
    """

    names: tuple[str, ...]
    colors: tuple[tuple[int, int, int], ...] = field(default=())
    null_class: str | None = None

    def __init__(
        self,
        names: Sequence[str],
        colors: Sequence[tuple[int, int, int] | str] | None = None,
        null_class: str | None = None,
    ) -> None:
        names = tuple(str(n) for n in names)
        if not names:
            raise ClassConfigError("ClassConfig needs at least one class name.")
        if len(set(names)) != len(names):
            raise ClassConfigError(f"Class names must be unique, got {list(names)}.")
        if null_class is None and "null" in names:
            null_class = "null"  # as Raster Vision takes it
        if null_class is not None and null_class not in names:
            raise ClassConfigError(
                f"null_class {null_class!r} is not one of the class names {list(names)}; "
                "add it to names or leave null_class=None."
            )
        if colors is None:
            rgb = [
                _NULL_COLOR if n == null_class else color
                for n, color in zip(names, _default_colors(len(names)), strict=True)
            ]
        else:
            if len(colors) != len(names):
                raise ClassConfigError(
                    f"Got {len(colors)} colors for {len(names)} classes; give one per class."
                )
            rgb = [_rgb(c) for c in colors]
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "colors", tuple(rgb))
        object.__setattr__(self, "null_class", null_class)

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __contains__(self, name: object) -> bool:
        return name in self.names

    @property
    def null_class_id(self) -> int | None:
        """Id of the null class, or ``None``."""
        return None if self.null_class is None else self.names.index(self.null_class)

    @property
    def ignore_class_id(self) -> int:
        """Id of the null class of :meth:`ensure_null_class`: the ignore index of training.

        Examples
        --------
        >>> ClassConfig(["a", "b"]).ignore_class_id, ClassConfig(["n", "a"], null_class="n").ignore_class_id
        (2, 0)
        """
        return (
            self.names.index(self.null_class) if self.null_class is not None else len(self.names)
        )

    def get_class_id(self, name: str) -> int:
        """Id of a class name."""
        try:
            return self.names.index(name)
        except ValueError:
            raise ClassConfigError(f"Unknown class {name!r}; known: {list(self.names)}.") from None

    def get_name(self, class_id: int) -> str:
        """Name of a class id.

        Examples
        --------
        >>> ClassConfig(["background", "building"]).get_name(1)
        'building'
        """
        if non_integers([class_id]) or not 0 <= class_id < len(self.names):
            raise ClassConfigError(
                f"Class id {class_id!r} is not one of this config's ids 0..{len(self.names) - 1} "
                f"({list(self.names)})."
            )
        return self.names[class_id]

    def get_null_class_id(self) -> int:
        """Id of the null class; an error if the config has none (see :meth:`ensure_null_class`).

        Examples
        --------
        >>> ClassConfig(["background", "building", "null"]).get_null_class_id()
        2
        """
        if self.null_class is None:
            raise ClassConfigError(
                f"Class config {list(self.names)} has no null class; name one with "
                "null_class=..., or use ensure_null_class() to add one."
            )
        return self.names.index(self.null_class)

    def get_color_to_class_id(self) -> dict[tuple[int, int, int], int]:
        """``{(r, g, b): class id}``, as RGB label rasters are read.

        Examples
        --------
        >>> ClassConfig(["a", "b"], colors=["#ff0000", (0, 0, 255)]).get_color_to_class_id()
        {(255, 0, 0): 0, (0, 0, 255): 1}
        """
        return {color: i for i, color in enumerate(self.colors)}

    def check_class_ids(
        self,
        values: np.ndarray,
        *,
        label: str | Callable[[], str],
        fix: str,
        skip: Sequence[int] = (),
    ) -> None:
        """Raise if ``values`` hold class ids this config does not have (``skip``, NaN: allowed).

        ``label`` names the input in the message; a callable is called only to raise
        (a source's ``repr`` per chip cost 9% of a training pass's interpreter time).

        Examples
        --------
        >>> ClassConfig(["a", "b"]).check_class_ids(np.array([0, 1, 255]), label="x", fix="", skip=[255])
        >>> ClassConfig(["a", "b"]).check_class_ids(np.array([0, 7]), label="Labels 'x'", fix="Fix it.")
        Traceback (most recent call last):
        ...
        geoxr.errors.ClassConfigError: Labels 'x': class ids [7] that the class config (2 classes: ['a', 'b']) does not have. Fix it.
        """
        n = len(self)
        if values.dtype.kind == "f":  # NaN is no class id
            values = values[~np.isnan(values)]
        # The range on the values' own (often uint8) dtype first: cheaper than int64.
        if not values.size or (values.min() >= 0 and values.max() < n):
            return
        ids = values.astype(np.int64)
        bad = (ids < 0) | (ids >= n)
        if skip:
            bad &= ~np.isin(ids, list(skip))
        if bad.any():
            name = label if isinstance(label, str) else label()
            raise ClassConfigError(
                f"{name}: class ids {np.unique(ids[bad])[:10].tolist()} that the class config "
                f"({n} classes: {list(self.names)}) does not have. {fix}"
            )

    def ensure_null_class(self) -> ClassConfig:
        """This config if it has a null class, else a copy with ``"null"`` appended."""
        if self.null_class is not None:
            return self
        # No class is named "null" here: that one would be the null class.
        return ClassConfig([*self.names, "null"], [*self.colors, _NULL_COLOR], null_class="null")

    def same_classes(self, other: ClassConfig) -> bool:
        """Whether ids mean the same classes in both configs (colors aside).

        Both are compared as label sources keep them: with a null class.

        Examples
        --------
        >>> ClassConfig(["a", "b"]).same_classes(ClassConfig(["a", "b"], colors=["#ff0000", "#0000ff"]))
        True
        >>> ClassConfig(["a", "b"]).same_classes(ClassConfig(["b", "a"]))
        False
        """
        mine, theirs = self.ensure_null_class(), other.ensure_null_class()
        return (mine.names, mine.null_class) == (theirs.names, theirs.null_class)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "names": list(self.names),
            "colors": [list(c) for c in self.colors],
            "null_class": self.null_class,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ClassConfig:
        """Inverse of :meth:`to_dict`.

        A config written before a class named ``"null"`` was the null class (with
        ``null_class`` unset) comes back as it was used then: ``"null"`` a class of
        its own, and a null class ``"_null"`` after the others (bundles and stores
        of that time have its scores).

        Examples
        --------
        >>> ClassConfig.from_dict({"names": ["a", "null"], "colors": [[0, 0, 0]] * 2}).names
        ('a', 'null', '_null')
        """
        names, colors, null = d["names"], [tuple(c) for c in d["colors"]], d.get("null_class")
        if null is None and "null" in names:
            return cls([*names, "_null"], [*colors, _NULL_COLOR], null_class="_null")
        return cls(names, colors, null)


def _rgb(color: tuple[int, int, int] | str) -> tuple[int, int, int]:
    """``(r, g, b)`` of ints 0..255, from ``'#rrggbb'`` or three such ints.

    Examples
    --------
    >>> _rgb("#ff8000"), _rgb((0, 128, 255))
    ((255, 128, 0), (0, 128, 255))
    >>> _rgb((300, 0, 0))
    Traceback (most recent call last):
    ...
    geoxr.errors.ClassConfigError: Colour (300, 0, 0) is not '#rrggbb' or three ints 0..255 (r, g, b).
    """
    wrong = ClassConfigError(f"Colour {color!r} is not '#rrggbb' or three ints 0..255 (r, g, b).")
    if isinstance(color, str):
        if not re.fullmatch(r"#?[0-9a-fA-F]{6}", color):
            raise wrong
        hexa = color.lstrip("#")
        values = [int(hexa[i : i + 2], 16) for i in (0, 2, 4)]
    else:
        try:
            values = list(color)
        except TypeError:
            raise wrong from None
        if len(values) != 3 or non_integers(values) or not all(0 <= v <= 255 for v in values):
            raise wrong
    r, g, b = (int(v) for v in values)
    return (r, g, b)
