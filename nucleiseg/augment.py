"""Training-time augmentation of (image, labels) crops.

Geometric transforms (crops, scale, flips, elastic) move the image and its
instance labels together; targets are derived from the transformed labels
afterwards, so boundaries stay consistent with the deformed nuclei. Signal
transforms (gamma, per-nucleus brightness, background, blur, noise, bright
objects) act on the normalized image only and imitate what differs between
microscopes, stains and exposures (Caicedo et al. 2019, Fig. 5: signal
variation is what hinders transfer). :class:`AugmentationConfig` switches each one and is
recorded in the model card; :func:`augment_crop` applies them in a fixed order.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage
from skimage.transform import resize

from nucleiseg.resampling import resize_labels


def random_crop(image: np.ndarray, labels: np.ndarray, size: int, margin: int, rng: np.random.Generator):
    """A random crop of ``size + 2 * margin`` pixels of both arrays.

    The central ``size`` x ``size`` part lies inside the image; an image
    smaller than that is first padded with empty background (its background
    level, labels 0), never with mirrored nuclei that the labels would call
    background. The ``margin`` around it is context for networks that consume it.
    """
    height, width = labels.shape
    pad_h, pad_w = max(0, size - height), max(0, size - width)
    if pad_h or pad_w:
        image, labels = pad_with_background(image, labels, pad_h, pad_w)
        height, width = labels.shape
    y = int(rng.integers(0, height - size + 1))
    x = int(rng.integers(0, width - size + 1))
    if margin:
        image = np.pad(image, margin, mode="reflect")
        labels = np.pad(labels, margin)
    extent = size + 2 * margin
    return image[y : y + extent, x : x + extent], labels[y : y + extent, x : x + extent]


def pad_with_background(image: np.ndarray, labels: np.ndarray, pad_h: int, pad_w: int):
    """Pad the bottom and right of both arrays: the image with its background level, the labels with 0.

    The level is the median of the pixels no nucleus covers (of all pixels when
    nuclei cover everything).
    """
    background = labels == 0
    level = float(np.median(image[background] if background.any() else image))
    padding = ((0, pad_h), (0, pad_w))
    return np.pad(image, padding, constant_values=level), np.pad(labels, padding)


def flip_rotate(image: np.ndarray, labels: np.ndarray, rng: np.random.Generator):
    """One of the eight flips/90-degree rotations, the same for both arrays."""
    k = int(rng.integers(0, 4))
    image, labels = np.rot90(image, k), np.rot90(labels, k)
    if rng.random() < 0.5:
        image, labels = image[:, ::-1], labels[:, ::-1]
    return np.ascontiguousarray(image), np.ascontiguousarray(labels)


def scale_intensity(image: np.ndarray, rng: np.random.Generator, gain=(0.6, 1.4), offset=(-0.1, 0.1)):
    """Illumination change on a normalized image: ``image * gain + offset``."""
    return image * np.float32(rng.uniform(*gain)) + np.float32(rng.uniform(*offset))


def elastic_deform(image: np.ndarray, labels: np.ndarray, rng: np.random.Generator, alpha: float = 30.0, sigma: float = 6.0):
    """Smooth random displacement field applied to both arrays.

    The image is resampled linearly, the labels by nearest neighbour so that
    they stay instance labels. Both arrays must have the same shape.
    """
    if image.shape != labels.shape:
        raise ValueError("elastic_deform needs image and labels of the same shape")
    shape = labels.shape
    dy = ndimage.gaussian_filter(rng.uniform(-1, 1, shape), sigma) * alpha
    dx = ndimage.gaussian_filter(rng.uniform(-1, 1, shape), sigma) * alpha
    yy, xx = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    coords = np.array([yy + dy, xx + dx])
    warped_image = ndimage.map_coordinates(image, coords, order=1, mode="reflect").astype(np.float32)
    # Same border mode as the image: nuclei reflected into view must keep their labels.
    warped_labels = ndimage.map_coordinates(labels, coords, order=0, mode="reflect").astype(labels.dtype)
    return warped_image, warped_labels


def scaled_crop(image: np.ndarray, labels: np.ndarray, size: int, margin: int, factor: float,
                rng: np.random.Generator):
    """A random crop seen at ``factor`` times its size, resampled to ``size + 2 * margin`` pixels.

    A region of ``(size + 2 * margin) / factor`` pixels is cut (see
    :func:`random_crop`) and resized: the image smoothly (linear, anti-aliased
    when shrinking), the labels by nearest neighbour so they stay instance
    labels. ``factor`` 0.5 halves every nucleus, 2 doubles it.
    """
    if factor <= 0:
        raise ValueError(f"scale factor must be > 0, got {factor}")
    extent = size + 2 * margin
    source = max(2, int(round(extent / factor)))
    region_image, region_labels = random_crop(image, labels, source, 0, rng)
    shape = (extent, extent)
    resized_image = resize(region_image, shape, order=1, mode="reflect", preserve_range=True,
                           anti_aliasing=factor < 1).astype(np.float32)
    resized_labels = resize_labels(region_labels, shape).astype(labels.dtype)
    return resized_image, resized_labels


def gamma_contrast(image: np.ndarray, rng: np.random.Generator, gamma=(0.5, 2.0), contrast=(0.5, 1.5)):
    """A random gamma curve, then a contrast stretch about the image's median.

    Gamma acts on the magnitude (sign kept), so the small negative values that
    percentile normalization leaves below its low percentile stay finite.
    """
    g = float(np.exp(rng.uniform(np.log(gamma[0]), np.log(gamma[1]))))
    curved = np.sign(image) * np.abs(image) ** np.float32(g)
    centre = np.float32(np.median(curved))
    return ((curved - centre) * np.float32(rng.uniform(*contrast)) + centre).astype(np.float32)


def _background_level(image: np.ndarray, labels: np.ndarray) -> np.float32:
    """Median of the background pixels (0 when the crop is all nucleus): what brightness changes scale around."""
    background = labels == 0
    return np.float32(np.median(image[background])) if background.any() else np.float32(0)


def nucleus_brightness(image: np.ndarray, labels: np.ndarray, rng: np.random.Generator, factor=(0.2, 1.5)):
    """Each nucleus dimmed or brightened by its own factor (log-uniform in ``factor``).

    The signal above the background level (median of the background pixels)
    is scaled; dim nuclei beside bright ones, as in mixed cell populations.
    """
    ids = np.unique(labels)
    ids = ids[ids > 0]
    if ids.size == 0:
        return image
    level = _background_level(image, labels)
    lut = np.ones(int(labels.max()) + 1, dtype=np.float32)
    lut[ids] = np.exp(rng.uniform(np.log(factor[0]), np.log(factor[1]), ids.size))
    return ((image - level) * lut[labels] + level).astype(np.float32)


def bright_objects(image: np.ndarray, labels: np.ndarray, rng: np.random.Generator, dimming=(2.0, 30.0),
                   kept=(0.0, 0.3), artefact_probability: float = 0.5):
    """A few bright objects set the intensity scale: everything else is dimmed by one factor.

    Percentile normalization maps the brightest pixels of an image to 1, so a few very bright
    nuclei or a speck of debris (possibly outside the crop) leave the other nuclei at a small
    fraction of that. The signal above the background level is divided by a factor
    (log-uniform in ``dimming``), except on a random share (uniform in ``kept``) of the crop's
    nuclei; with ``artefact_probability`` a disc of background, as bright as the brightest
    nucleus or up to twice that, is added. Labels do not change (the disc is no nucleus).
    """
    background = labels == 0
    level = _background_level(image, labels)
    factor = np.float32(np.exp(rng.uniform(np.log(dimming[0]), np.log(dimming[1]))))
    peak = float(image.max())
    out = (image - level) / factor + level
    ids = np.unique(labels)
    ids = ids[ids > 0]
    if ids.size:
        bright = ids[rng.random(ids.size) < rng.uniform(*kept)]
        keep = np.isin(labels, bright)
        out[keep] = image[keep]
    if rng.random() < artefact_probability:
        height, width = image.shape
        radius = rng.uniform(2.0, max(2.0, min(height, width) / 10))
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        yy, xx = np.ogrid[:height, :width]
        disc = ((yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2) & background
        out[disc] = level + (peak - level) * np.float32(rng.uniform(1.0, 2.0))
    return out.astype(np.float32)


def background_illumination(image: np.ndarray, rng: np.random.Generator, offset=(0.0, 0.3), strength=(0.0, 0.6)):
    """An additive background offset and a smooth multiplicative illumination field.

    The field is a random plane tilted across the crop plus a broad Gaussian
    bump, spanning ``1 - strength`` to 1 (uneven illumination, vignetting).
    """
    height, width = image.shape
    yy, xx = np.meshgrid(np.linspace(-1, 1, height, dtype=np.float32),
                         np.linspace(-1, 1, width, dtype=np.float32), indexing="ij")
    angle = rng.uniform(0, 2 * np.pi)
    plane = np.cos(angle) * yy + np.sin(angle) * xx
    cy, cx = rng.uniform(-1, 1, 2)
    bump = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / np.float32(rng.uniform(0.3, 2.0)))
    field = rng.uniform(0, 1) * plane + bump
    field = (field - field.min()) / max(float(np.ptp(field)), 1e-6)
    illumination = 1 - np.float32(rng.uniform(*strength)) * (1 - field)
    return (image * illumination + np.float32(rng.uniform(*offset))).astype(np.float32)


def defocus_blur(image: np.ndarray, rng: np.random.Generator, sigma=(0.5, 2.0), keep_range: bool = False):
    """Gaussian blur of a random width (defocus, a lower-NA objective).

    With ``keep_range`` the blurred crop is stretched back so that its 0.1th and 99.9th
    percentiles lie where the sharp crop's did. A real defocused image is normalized after
    it was blurred, so its lowered peaks reach the top of the range again; blurring a crop
    of a normalized image leaves them low, which the network then never sees.
    """
    blurred = ndimage.gaussian_filter(image, float(rng.uniform(*sigma)), mode="reflect")
    if keep_range:
        low, high = np.percentile(image, [0.1, 99.9])
        blurred_low, blurred_high = np.percentile(blurred, [0.1, 99.9])
        if high > low and blurred_high - blurred_low > 1e-6:
            blurred = low + (blurred - blurred_low) * ((high - low) / (blurred_high - blurred_low))
    return blurred.astype(np.float32)


def add_noise(image: np.ndarray, rng: np.random.Generator, gaussian=(0.0, 0.08), photons=(20.0, 500.0)):
    """Shot noise (Poisson at a random photon count per unit intensity), then Gaussian read noise."""
    positive = np.clip(image, 0, None)
    scale = float(np.exp(rng.uniform(np.log(photons[0]), np.log(photons[1]))))
    shot = rng.poisson(positive * scale).astype(np.float32) / np.float32(scale) - positive
    read = rng.normal(0.0, rng.uniform(*gaussian), image.shape).astype(np.float32)
    return (image + shot + read).astype(np.float32)


#: The switches of :class:`AugmentationConfig` applied to a crop with its ``probability``.
SIGNAL_TRANSFORMS = ("nucleus_brightness", "background", "gamma", "blur", "noise", "bright_objects")


@dataclass(frozen=True)
class AugmentationConfig:
    """Which augmentations a training run applies (recorded in the model card).

    Geometric ones always apply when switched on; each signal transform is applied
    to a crop with probability ``probability`` so that clean crops stay common.
    ``scale`` is ``(low, high)`` for a log-uniform zoom factor, or ``()`` for none;
    ``blur_sigma`` the range of the defocus blur's width in pixels; ``blur_keep_range``
    stretches a blurred crop back to its range (:func:`defocus_blur`); ``blur_probability``,
    when set, replaces ``probability`` for the blur alone (blur is the one perturbation that
    fewer perturbed crops made worse).
    """

    flips: bool = True
    elastic: bool = False
    intensity: bool = True  # global gain and offset
    scale: tuple = ()
    gamma: bool = False
    nucleus_brightness: bool = False
    background: bool = False
    blur: bool = False
    blur_sigma: tuple = (0.5, 2.0)
    blur_keep_range: bool = False
    noise: bool = False
    bright_objects: bool = False
    probability: float = 0.5
    blur_probability: float | None = None

    def __post_init__(self):
        if self.scale and not (len(self.scale) == 2 and 0 < self.scale[0] <= self.scale[1]):
            raise ValueError(f"scale must be (low, high) with 0 < low <= high, got {self.scale}")
        if not 0 <= self.probability <= 1:
            raise ValueError(f"augmentation probability must be in [0, 1], got {self.probability}")
        if self.blur_probability is not None and not 0 <= self.blur_probability <= 1:
            raise ValueError(f"blur probability must be in [0, 1], got {self.blur_probability}")
        if not (len(self.blur_sigma) == 2 and 0 < self.blur_sigma[0] <= self.blur_sigma[1]):
            raise ValueError(f"blur sigma must be (low, high) with 0 < low <= high, got {self.blur_sigma}")

    def to_dict(self) -> dict:
        return {**asdict(self), "scale": list(self.scale), "blur_sigma": list(self.blur_sigma)}

    def describe(self) -> str:
        """The augmentations switched on, in words (for reports)."""
        return describe_record(self.to_dict())

    @classmethod
    def robust(cls, **changes) -> "AugmentationConfig":
        """The robust recipe (sixteenth session): every augmentation on but ``bright_objects``.

        ``bright_objects`` came later; leaving it out keeps ``--robust`` meaning what it meant
        for the results made with it.
        """
        values = dict(elastic=True, scale=(0.5, 2.0), gamma=True, nucleus_brightness=True,
                      background=True, blur=True, noise=True)
        return cls(**{**values, **changes})


def describe_record(record: dict) -> str:
    """A recorded augmentation (:meth:`AugmentationConfig.to_dict`, or a card's older
    ``training.augmentation`` with other keys) in words: the switches on, the blur's width,
    the zoom range, and the signal transforms' probability."""
    on = [name.replace("_", " ") for name, value in record.items() if value is True]
    if record.get("blur") and record.get("blur_sigma"):
        low, high = record["blur_sigma"]
        blur = f"blur sigma {low:g}-{high:g} px"
        if record.get("blur_probability") is not None:
            blur += f" with probability {record['blur_probability']:g}"
        on[on.index("blur")] = blur
    if record.get("scale"):
        low, high = record["scale"]
        on.append(f"scale jitter {low:g}-{high:g}x")
    text = ", ".join(on)
    if "probability" in record and any(record.get(name) for name in SIGNAL_TRANSFORMS):
        text += f" (each signal transform with probability {record['probability']:g})"
    return text


def augment_crop(image: np.ndarray, labels: np.ndarray, size: int, margin: int, config: AugmentationConfig,
                 rng: np.random.Generator):
    """One augmented training crop: image ``(size + 2m)`` square, labels the same shape.

    Order: crop (zoomed when ``config.scale``), flips, elastic deformation, then the
    signal transforms in the order light meets them: nucleus brightness, background
    and illumination, gamma/contrast, gain/offset, blur, noise; last, bright objects (an
    effect of normalization, which comes after the camera).
    """
    if config.scale:
        low, high = config.scale
        factor = float(np.exp(rng.uniform(np.log(low), np.log(high))))
        image, labels = scaled_crop(image, labels, size, margin, factor, rng)
    else:
        image, labels = random_crop(image, labels, size, margin, rng)
    if config.flips:
        image, labels = flip_rotate(image, labels, rng)
    if config.elastic:
        image, labels = elastic_deform(image, labels, rng)
    image = np.asarray(image, dtype=np.float32)

    def sometimes(probability: float = config.probability) -> bool:
        return rng.random() < probability

    if config.nucleus_brightness and sometimes():
        image = nucleus_brightness(image, labels, rng)
    if config.background and sometimes():
        image = background_illumination(image, rng)
    if config.gamma and sometimes():
        image = gamma_contrast(image, rng)
    if config.intensity:
        image = scale_intensity(image, rng)
    blur_probability = config.probability if config.blur_probability is None else config.blur_probability
    if config.blur and sometimes(blur_probability):
        image = defocus_blur(image, rng, config.blur_sigma, config.blur_keep_range)
    if config.noise and sometimes():
        image = add_noise(image, rng)
    if config.bright_objects and sometimes():
        image = bright_objects(image, labels, rng)
    return image, labels
