"""Whole-image prediction of any size through overlapping tiles.

The image is never resized. It is padded (reflection) so that every tile
meets the network's size constraints, cut into overlapping tiles, predicted
in batches, and stitched with *cropped seams*: each output pixel is taken
from the tile in which it lies farthest from an edge, so wherever the
network's receptive field fits inside half the overlap the stitched result
equals whole-image prediction. Only the output map and one batch of tiles
are held in memory, so a 4000x4000 image runs in bounded memory.
"""

from __future__ import annotations

from typing import Callable

import numpy as np


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _starts(length: int, tile: int, step: int) -> list[int]:
    """Tile origins covering ``length`` with the last tile flush to the end."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)
    return starts


def predict_tiled(
    predict_batch: Callable[[np.ndarray], np.ndarray],
    image: np.ndarray,
    n_classes: int = 3,
    tile: int = 512,
    overlap: int = 64,
    margin: int = 0,
    multiple: int = 8,
    batch_size: int = 4,
) -> np.ndarray:
    """Predict a ``(H, W, n_classes)`` map for a 2-D image of any size.

    Parameters
    ----------
    predict_batch : callable
        Maps a float32 batch ``(B, h + 2*margin, w + 2*margin, 1)`` to
        ``(B, h, w, n_classes)``.
    image : ndarray
        2-D, already normalized.
    tile : int
        Output tile edge in pixels (rounded up to ``multiple``). Images not
        larger than one tile (after padding) are predicted in one pass.
    overlap : int
        Pixels shared by neighbouring tiles; half of it is cropped from each
        side of an inner seam.
    margin : int
        Context pixels the network consumes on every side (DeepCell's dense
        form needs 30); supplied by reflection at the image border.
    multiple : int
        The network's input (minus margins) must be a multiple of this.
    batch_size : int
        Tiles per network call.
    """
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 2:
        raise ValueError(f"expected a 2-D image, got shape {image.shape}")
    if tile < 1 or overlap < 0 or batch_size < 1:
        raise ValueError("tile and batch_size must be >= 1 and overlap >= 0")
    height, width = image.shape
    tile = _round_up(tile, multiple)
    if overlap >= tile:
        raise ValueError(f"overlap ({overlap}) must be smaller than the tile size ({tile})")
    # Each axis: one padded pass when it fits in a tile, else fixed-size tiles.
    tile_h = min(tile, _round_up(height, multiple))
    tile_w = min(tile, _round_up(width, multiple))
    padded_h, padded_w = max(height, tile_h), max(width, tile_w)
    pad = ((margin, margin + padded_h - height), (margin, margin + padded_w - width))
    padded = np.pad(image, pad, mode="reflect" if min(height, width) > 1 else "edge")

    step_h, step_w = tile_h - overlap, tile_w - overlap
    ys, xs = _starts(padded_h, tile_h, step_h), _starts(padded_w, tile_w, step_w)
    output = np.zeros((height, width, n_classes), dtype=np.float32)
    origins = [(y, x) for y in ys for x in xs]
    half = overlap // 2
    for first in range(0, len(origins), batch_size):
        chunk = origins[first : first + batch_size]
        batch = np.stack(
            [padded[y : y + tile_h + 2 * margin, x : x + tile_w + 2 * margin] for y, x in chunk]
        )[..., None]
        predictions = np.asarray(predict_batch(batch), dtype=np.float32)
        for (y, x), prediction in zip(chunk, predictions):
            # Keep the central part; the image border keeps its tile edge.
            top = 0 if y == 0 else half
            left = 0 if x == 0 else half
            bottom = tile_h if y + tile_h >= padded_h else tile_h - half
            right = tile_w if x + tile_w >= padded_w else tile_w - half
            y0, y1 = y + top, min(y + bottom, height)
            x0, x1 = x + left, min(x + right, width)
            if y1 > y0 and x1 > x0:
                output[y0:y1, x0:x1] = prediction[top : top + y1 - y0, left : left + x1 - x0]
    return output
