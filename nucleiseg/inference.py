"""Image in, class probabilities and nucleus labels out: the one path for every model type and size.

The CellProfiler modules, training-time validation, the benchmarks and the
tuning tools all call :func:`predict_probabilities` or :func:`segment`; the
model type (``model.model_type``) supplies the network-specific part.
"""

from __future__ import annotations

import numpy as np
from skimage.segmentation import relabel_sequential

from . import nucleus_size
from .cards import LoadedModel
from .normalization import check_mask, normalize
from .postprocess import PostprocessSettings, mask_probabilities
from .targets import BACKGROUND


def check_greyscale(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Return ``image`` as a 2-D array or raise ValueError saying what is wrong."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] in (3, 4):
        raise ValueError(f"{name} is a colour image ({image.shape[-1]} channels); convert it to greyscale first (e.g. ColorToGray)")
    if image.ndim != 2:
        raise ValueError(f"{name} must be a 2-D greyscale image, got shape {image.shape}")
    if image.size == 0:
        raise ValueError(f"{name} is empty")
    if np.issubdtype(image.dtype, np.floating):
        bad = int(np.count_nonzero(~np.isfinite(image)))
        if bad:
            # Percentile normalization would turn the whole image into NaN probabilities.
            raise ValueError(f"{name} has {bad} pixel(s) that are NaN or infinite; "
                             "replace them first (e.g. with ImageMath, or at the step that produced them)")
    return image


def average_over_flips_and_rotations(predict, image: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Test-time augmentation: the mean of ``predict`` over the 8 flips and 90° rotations of ``image``.

    Each prediction is mapped back onto the original pixel grid before averaging, so
    the result has the image's shape; it costs eight predictions.

    Parameters
    ----------
    predict : callable
        Maps a 2-D image to an ``(H, W, C)`` array for that image; with ``mask``, it is
        called as ``predict(view, mask_view)`` with the mask turned the same way.
    image : ndarray
        2-D image.
    mask : ndarray of bool, optional
        Pixels to use (see :func:`predict_probabilities`).
    """

    def turned(array, turns, flip):
        view = np.rot90(array, turns)
        return np.ascontiguousarray(view[:, ::-1] if flip else view)

    total = None
    for turns in range(4):
        for flip in (False, True):
            view = turned(image, turns, flip)
            arguments = (view,) if mask is None else (view, turned(mask, turns, flip))
            prediction = np.asarray(predict(*arguments), dtype=np.float32)
            if flip:
                prediction = prediction[:, ::-1]
            prediction = np.rot90(prediction, -turns)
            total = prediction.copy() if total is None else total + prediction
    return total / 8


def blank_probabilities(image: np.ndarray, mask: np.ndarray | None = None, n_classes: int = 3) -> np.ndarray | None:
    """Pure-background probabilities when there is nothing to find, else None.

    Nothing to find: the image is constant (inside ``mask``, when given) or the mask is
    empty; percentile normalization is undefined there, so no network need run.
    """
    inside = image if mask is None else image[mask]
    if inside.size and np.ptp(inside) > 0:
        return None
    probabilities = np.zeros(image.shape + (n_classes,), dtype=np.float32)
    probabilities[..., BACKGROUND] = 1.0
    return probabilities


def predict_probabilities(
    image: np.ndarray,
    model: LoadedModel,
    normalization: dict | None = None,
    tile: int = 1024,
    overlap: int = 64,
    batch_size: int = 1,
    augment: bool = False,
    mask: np.ndarray | None = None,
    mode: str | None = None,
) -> np.ndarray:
    """``(H, W, C)`` float32 class probabilities (background, interior, boundary for the built-in types).

    Parameters
    ----------
    image : ndarray
        2-D greyscale image, raw (any numeric dtype).
    model : LoadedModel
        Networks of one model type (several: their probabilities are averaged), run by
        its engine (:func:`nucleiseg.cards.load`) on its device.
    normalization : dict, optional
        Overrides the model card's normalization.
    tile, overlap, batch_size : int
        Tiling of large images (:func:`nucleiseg.tiling.predict_tiled`).
    augment : bool
        Average over the 8 flips and rotations (:func:`average_over_flips_and_rotations`).
    mask : ndarray of bool, optional
        Normalization statistics come from the pixels inside it and everything
        outside is background (:func:`nucleiseg.postprocess.mask_probabilities`),
        so no nucleus reaches outside the mask.
    mode : str, optional
        One of the model type's inference modes (DeepCell: ``"dense"`` or ``"patch"``).

    A constant image gives pure-background probabilities without running the network.
    """
    image = check_greyscale(image)
    model_type = model.model_type
    mode = model_type.check_mode(mode)
    if mask is not None:
        mask = check_mask(mask, image.shape)
    blank = blank_probabilities(image, mask, len(model_type.classes))
    if blank is not None:
        return blank
    normalized = normalize(image, normalization or model.normalization, mask=mask)

    def predict(pixels):
        return model_type.predict(model, pixels, tile=tile, overlap=overlap, batch_size=batch_size, mode=mode)

    with model.placement():  # TensorFlow's device scope; a no-op for ONNX Runtime
        probabilities = average_over_flips_and_rotations(predict, normalized) if augment else predict(normalized)
    return probabilities if mask is None else mask_probabilities(probabilities, mask)


def segment(
    image: np.ndarray,
    model: LoadedModel,
    settings: PostprocessSettings | None = None,
    match_size: bool = False,
    **predict_options,
) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities, labels) for one greyscale image; ``predict_options`` go to :func:`predict_probabilities`.

    With ``match_size`` an image whose nuclei (found by a first pass) are typically smaller or
    larger than the model's training nuclei is resampled to their size and run through the
    network again; the probabilities are brought back to the image's grid (linearly). Labels
    come from the finer of the two grids: for enlarged nuclei, post-processed on the zoomed
    grid and brought back by nearest neighbour; for shrunk ones, post-processed on the
    image's grid with sizes scaled (:meth:`PostprocessSettings.for_zoom`;
    :mod:`nucleiseg.nucleus_size`). The model's card must record its training nuclei's
    diameters (:func:`nucleiseg.cards.require_nucleus_diameters`), else ModelError.
    """
    trained = model.trained_diameters if match_size else None
    probabilities = predict_probabilities(image, model, **predict_options)
    labels = model.model_type.to_labels(probabilities, settings)
    if trained is None:
        return probabilities, labels
    factor = nucleus_size.rescale_factor(nucleus_size.typical_diameter(labels), trained)
    if factor == 1.0:
        return probabilities, labels
    resampled = nucleus_size.resample_image(check_greyscale(image), factor)
    options = dict(predict_options)
    if options.get("mask") is not None:
        options["mask"] = nucleus_size.resample_to(np.asarray(options["mask"], dtype=np.uint8), resampled.shape,
                                                   labels=True).astype(bool)
    zoomed = predict_probabilities(resampled, model, **options)
    probabilities = nucleus_size.resample_to(zoomed, image.shape, labels=False)
    mask = predict_options.get("mask")
    if mask is not None:  # interpolation must not carry anything back across the mask's edge
        mask = check_mask(mask, image.shape)
        probabilities = mask_probabilities(probabilities, mask)
    if factor < 1:
        # Nuclei were shrunk for the network: outlines are drawn on the image's own, finer grid
        # from the probabilities brought back (labels enlarged by nearest neighbour come out
        # blocky), with the post-processing's sizes scaled alike.
        labels = model.model_type.to_labels(probabilities, (settings or PostprocessSettings()).for_zoom(factor))
    else:
        # Nuclei were enlarged: outlines are drawn on the finer, zoomed grid and brought back.
        labels = nucleus_size.resample_to(model.model_type.to_labels(zoomed, settings), image.shape, labels=True)
        if mask is not None:
            labels = np.where(mask, labels, 0)
        # Shrinking back can lose a nucleus of a pixel or two: numbers stay consecutive.
        labels = relabel_sequential(labels)[0]
    return probabilities, labels
