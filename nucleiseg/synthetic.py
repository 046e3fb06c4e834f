"""A small, seeded synthetic demo set of fluorescence nuclei with exact ground truth.

Each image is drawn from a scene preset (sparse, dense, clumped, mixed); nuclei
are randomly oriented ellipses with wobbly outlines. Overlapping nuclei are cut
apart where their normalised distances are equal, so touching nuclei share a
boundary exactly as in annotated data and the label image is the exact ground
truth. Micronuclei sit next to some nuclei. The optical side adds per-nucleus
brightness and texture, blur, uneven illumination, background and
Poisson/Gaussian noise. At least one image of the default set (``synth_001``,
the dense scene) holds more than 255 nuclei, so 16-bit label handling is
exercised.

Written in our layout (see :mod:`nucleiseg.layouts`): ``images/<stem>.png``
(16-bit), ``masks/<stem>.png`` (16-bit labels) and ``train.txt`` /
``val.txt`` / ``test.txt``.

Command line::

    python -m nucleiseg.synthetic OUT_DIR [--n 12] [--seed 0] [--size 256]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import imageio.v3 as iio
import numpy as np
from scipy import ndimage

#: Split of image ``i``: ``SPLIT_CYCLE[i % 3]``.
SPLIT_CYCLE = ("train", "val", "test")


@dataclass(frozen=True)
class Scene:
    """How one synthetic image is populated.

    Attributes
    ----------
    name : str
        Preset name.
    nuclei : int
        Nuclei attempted (placements that collide too much are skipped).
    radius : (float, float)
        Range of the mean radius of a nucleus in pixels (at 256 x 256).
    clumps : int
        Number of clump centres; 0 scatters nuclei uniformly.
    clump_spread : float
        Standard deviation of positions around a clump centre (pixels).
    min_gap : float
        Minimum centre distance as a fraction of the two radii summed;
        below 1 nuclei overlap and are cut into touching neighbours.
    micronuclei : float
        Fraction of nuclei that get a micronucleus next to them.
    """

    name: str
    nuclei: int
    radius: tuple[float, float]
    clumps: int
    clump_spread: float
    min_gap: float
    micronuclei: float


SCENES = (
    Scene("normal", 45, (8.0, 13.0), 0, 0.0, 0.8, 0.1),
    Scene("dense", 420, (4.0, 5.5), 0, 0.0, 0.85, 0.0),
    Scene("clumped", 70, (7.0, 11.0), 4, 18.0, 0.65, 0.15),
    Scene("sparse", 16, (11.0, 18.0), 0, 0.0, 0.9, 0.3),
)


def scene_for(index: int) -> Scene:
    """Preset of image ``index`` (cycles through :data:`SCENES`)."""
    return SCENES[index % len(SCENES)]


def _place_nuclei(rng: np.random.Generator, scene: Scene, size: int, scale: float):
    """Centres, semi-axes and angles of the nuclei of one scene (rejection sampling)."""
    centres = np.empty((0, 2))
    radii = np.empty(0)
    out = []
    if scene.clumps:
        clump_centres = rng.uniform(0.15 * size, 0.85 * size, size=(scene.clumps, 2))
    for _ in range(scene.nuclei * 4):  # bounded number of tries
        if len(out) >= scene.nuclei:
            break
        r = rng.uniform(*scene.radius) * scale
        if scene.clumps and rng.random() < 0.8:
            c = clump_centres[rng.integers(scene.clumps)] + rng.normal(0, scene.clump_spread * scale, 2)
        else:
            c = rng.uniform(0, size, 2)
        if not (-0.3 * r <= c[0] < size + 0.3 * r and -0.3 * r <= c[1] < size + 0.3 * r):
            continue
        if len(out):
            dist = np.hypot(*(centres - c).T)
            if np.any(dist < scene.min_gap * (radii + r)):
                continue
        elongation = rng.uniform(1.0, 1.6)
        a, b = r * np.sqrt(elongation), r / np.sqrt(elongation)
        out.append((c, a, b, rng.uniform(0, np.pi)))
        centres = np.vstack([centres, c])
        radii = np.append(radii, r)
    return out


def _render_labels(nuclei, shape, rng: np.random.Generator) -> np.ndarray:
    """Exact label image: each pixel goes to the nucleus with the smallest normalised distance."""
    best = np.full(shape, np.inf)
    labels = np.zeros(shape, np.int32)
    h, w = shape
    for label, (c, a, b, angle) in enumerate(nuclei, start=1):
        reach = int(np.ceil(max(a, b) * 1.3)) + 1
        y0, y1 = max(0, int(c[0]) - reach), min(h, int(c[0]) + reach + 1)
        x0, x1 = max(0, int(c[1]) - reach), min(w, int(c[1]) + reach + 1)
        if y0 >= y1 or x0 >= x1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1]
        dy, dx = yy - c[0], xx - c[1]
        u = dx * np.cos(angle) + dy * np.sin(angle)
        v = -dx * np.sin(angle) + dy * np.cos(angle)
        # A few low-order harmonics make outlines irregular instead of perfect ellipses.
        theta = np.arctan2(v, u)
        wobble = 1.0 + sum(
            rng.uniform(0, 0.06) * np.cos(k * theta + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 5)
        )
        d = np.sqrt((u / a) ** 2 + (v / b) ** 2) / wobble
        window = (slice(y0, y1), slice(x0, x1))
        take = (d < 1.0) & (d < best[window])
        best[window][take] = d[take]
        labels[window][take] = label
    return labels


def _add_micronuclei(labels: np.ndarray, nuclei, fraction: float, rng: np.random.Generator, scale: float) -> np.ndarray:
    """Small round bodies beside some nuclei, only on free background."""
    h, w = labels.shape
    next_label = int(labels.max()) + 1
    free = ndimage.binary_dilation(labels > 0, iterations=1)  # keep a one-pixel gap
    for c, a, b, _ in nuclei:
        if rng.random() >= fraction:
            continue
        r = rng.uniform(1.5, 2.6) * scale
        direction = rng.uniform(0, 2 * np.pi)
        distance = max(a, b) + r + rng.uniform(1.5, 4.0)
        cy, cx = c[0] + distance * np.sin(direction), c[1] + distance * np.cos(direction)
        reach = int(np.ceil(r)) + 1
        y0, y1 = max(0, int(cy) - reach), min(h, int(cy) + reach + 1)
        x0, x1 = max(0, int(cx) - reach), min(w, int(cx) + reach + 1)
        if y0 >= y1 or x0 >= x1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1]
        disk = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        window = (slice(y0, y1), slice(x0, x1))
        if disk.sum() < 4 or np.any(free[window][disk]):
            continue
        labels[window][disk] = next_label
        free[window] |= ndimage.binary_dilation(disk, iterations=1)
        next_label += 1
    return labels


def _drop_fragments(labels: np.ndarray, min_area: int = 6) -> np.ndarray:
    """Remove nuclei that lost almost all pixels to neighbours; renumber 1..N (in place)."""
    # Keep only the largest piece of a nucleus cut in two by its neighbours.
    for label, window in enumerate(ndimage.find_objects(labels), start=1):
        if window is None:
            continue
        pieces, count = ndimage.label(labels[window] == label)
        if count > 1:
            largest = 1 + int(np.argmax(np.bincount(pieces.ravel())[1:]))
            labels[window][(pieces > 0) & (pieces != largest)] = 0
    areas = np.bincount(labels.ravel())
    keep = areas >= min_area
    keep[0] = False
    new = np.zeros(areas.size, np.int32)
    new[keep] = np.arange(1, int(keep.sum()) + 1)
    return new[labels]


def _render_image(labels: np.ndarray, rng: np.random.Generator, dtype) -> np.ndarray:
    """Fluorescence image of a label image: texture, blur, illumination, background, noise."""
    h, w = labels.shape
    n = int(labels.max())
    brightness = np.concatenate([[0.0], rng.uniform(0.35, 1.0, n)])  # some nuclei are dim
    signal = brightness[labels]
    # Chromatin texture and a brighter rim-to-centre profile.
    texture = ndimage.gaussian_filter(rng.normal(0, 1, (h, w)), 1.2)
    signal *= 1.0 + 0.25 * texture / (texture.std() + 1e-9)
    inside = ndimage.distance_transform_edt(labels > 0)
    signal *= 0.75 + 0.25 * np.clip(inside / 3.0, 0, 1)
    signal = ndimage.gaussian_filter(np.clip(signal, 0, None), rng.uniform(0.7, 1.3))
    # Uneven illumination: a smooth gradient plus a broad vignette.
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    gy, gx = rng.uniform(-0.5, 0.5, 2)
    cy, cx = rng.uniform(0.2, 0.8, 2)
    illumination = (1.0 + gy * (yy - 0.5) + gx * (xx - 0.5)) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 0.6)
    illumination /= illumination.max()
    exposure = rng.uniform(0.5, 1.0)  # varying brightness between images
    background = rng.uniform(0.03, 0.08)
    clean = exposure * illumination * (signal + background)
    top = np.iinfo(dtype).max
    photons = rng.uniform(150, 600)  # Poisson noise at a scene-dependent photon budget
    noisy = rng.poisson(clean * photons) / photons + rng.normal(0, 0.006, (h, w))
    return np.clip(noisy * 0.55 * top, 0, top).astype(dtype)


def generate_one(index: int, seed: int = 0, size: int = 256, dtype=np.uint16) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic image and its exact labels.

    Parameters
    ----------
    index : int
        Image number; picks the scene preset and seeds the generator with ``seed``.
    seed : int
        Set seed.
    size : int
        Height and width in pixels; object sizes and counts scale with it.
    dtype : numpy dtype
        ``uint8`` or ``uint16`` for the image.

    Returns
    -------
    (image, labels)
        ``(size, size)`` image in ``dtype`` and uint16 labels, consecutive from 1.
    """
    rng = np.random.default_rng([seed, index])
    base = scene_for(index)
    scale = 1.0
    area_factor = (size / 256.0) ** 2
    scene = Scene(
        base.name,
        max(1, int(round(base.nuclei * area_factor))),
        base.radius,
        base.clumps,
        base.clump_spread,
        base.min_gap,
        base.micronuclei,
    )
    nuclei = _place_nuclei(rng, scene, size, scale)
    labels = _render_labels(nuclei, (size, size), rng)
    labels = _drop_fragments(labels)
    labels = _add_micronuclei(labels, nuclei, scene.micronuclei, rng, scale)
    image = _render_image(labels, rng, np.dtype(dtype).type)
    return image, labels.astype(np.uint16)


def generate(out_dir: Path, n: int = 12, seed: int = 0, size: int = 256, dtype=np.uint16) -> list[str]:
    """Write a synthetic demo set in our layout.

    Parameters
    ----------
    out_dir : Path
        Output folder; ``images/``, ``masks/`` and the split files are created
        (existing files of the same names are overwritten).
    n : int
        Number of images (>= 1).
    seed : int
        Seed; the same ``(n, seed, size, dtype)`` always gives identical files.
    size : int
        Image height and width.
    dtype : numpy dtype
        Image dtype, ``uint16`` (default) or ``uint8``.

    Returns
    -------
    list of str
        The stems written, ``synth_000`` ...
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if size < 32:
        raise ValueError(f"size must be >= 32, got {size}")
    if np.dtype(dtype) not in (np.dtype(np.uint8), np.dtype(np.uint16)):
        raise ValueError(f"dtype must be uint8 or uint16, got {dtype}")
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    (out_dir / "masks").mkdir(parents=True, exist_ok=True)
    stems = []
    splits: dict[str, list[str]] = {s: [] for s in SPLIT_CYCLE}
    for index in range(n):
        stem = f"synth_{index:03d}"
        image, labels = generate_one(index, seed, size, dtype)
        iio.imwrite(out_dir / "images" / f"{stem}.png", image)
        iio.imwrite(out_dir / "masks" / f"{stem}.png", labels)
        stems.append(stem)
        splits[SPLIT_CYCLE[index % len(SPLIT_CYCLE)]].append(stem)
    for split, names in splits.items():
        (out_dir / f"{split}.txt").write_text("".join(f"{s}\n" for s in names))
    return stems


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; see the module docstring."""
    parser = argparse.ArgumentParser(prog="python -m nucleiseg.synthetic", description=__doc__.split("\n")[0])
    parser.add_argument("out_dir", type=Path, help="output folder (our layout)")
    parser.add_argument("--n", type=int, default=12, help="number of images (default 12)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--size", type=int, default=256, help="image height and width (default 256)")
    parser.add_argument("--dtype", choices=("uint8", "uint16"), default="uint16", help="image dtype (default uint16)")
    args = parser.parse_args(argv)
    try:
        stems = generate(args.out_dir, n=args.n, seed=args.seed, size=args.size, dtype=args.dtype)
    except ValueError as error:
        parser.error(str(error))
    print(f"wrote {len(stems)} images to {args.out_dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
