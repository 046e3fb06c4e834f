"""Image in, class probabilities and nucleus labels out (any network, any size)."""

from __future__ import annotations

import numpy as np

from .architectures import input_geometry
from .models import LoadedModel
from .normalization import normalize
from .postprocess import PostprocessSettings, probabilities_to_labels
from .tiling import predict_tiled


def check_greyscale(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Return ``image`` as a 2-D array or raise ValueError saying what is wrong."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] in (3, 4):
        raise ValueError(f"{name} is a colour image ({image.shape[-1]} channels); convert it to greyscale first (e.g. ColorToGray)")
    if image.ndim != 2:
        raise ValueError(f"{name} must be a 2-D greyscale image, got shape {image.shape}")
    if image.size == 0:
        raise ValueError(f"{name} is empty")
    return image


def predict_probabilities(
    image: np.ndarray,
    model: LoadedModel,
    normalization: dict | None = None,
    tile: int = 1024,
    overlap: int = 64,
    batch_size: int = 1,
) -> np.ndarray:
    """``(H, W, 3)`` float32 class probabilities (background, interior, boundary).

    ``normalization`` overrides the model card's; a constant image gives
    pure-background probabilities without running the network.
    """
    image = check_greyscale(image)
    probabilities = np.zeros(image.shape + (3,), dtype=np.float32)
    if np.ptp(image) == 0:
        probabilities[..., 0] = 1.0
        return probabilities
    normalized = normalize(image, normalization or model.normalization)
    margin, multiple = input_geometry(model.architecture)
    return predict_tiled(
        model.predict_batch,
        normalized,
        n_classes=3,
        tile=tile,
        overlap=overlap,
        margin=margin,
        multiple=multiple,
        batch_size=batch_size,
    )


def segment(
    image: np.ndarray,
    model: LoadedModel,
    settings: PostprocessSettings | None = None,
    **predict_options,
) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities, labels) for one greyscale image."""
    probabilities = predict_probabilities(image, model, **predict_options)
    return probabilities, probabilities_to_labels(probabilities, settings)
