"""The names that modules, generated pipelines and the benchmark runner agree on.

docs/CONVENTIONS.md is the prose of this file: every shipped pipeline loads its
greyscale image as :data:`IMAGE` from a folder named :data:`IMAGES_FOLDER`, the
ground truth as objects :data:`GROUND_TRUTH` from :data:`MASKS_FOLDER`, matched
by the metadata field :data:`STEM`, and saves the predicted :data:`NUCLEI` as
16-bit label images into :data:`LABELS_FOLDER` of the output folder. The
modules' default settings use the same names, so a module added to such a
pipeline needs no renaming.
"""

from __future__ import annotations

#: The greyscale input image (a DNA stain).
IMAGE = "DNA"
#: Ground-truth nuclei, loaded as objects from label images.
GROUND_TRUTH = "GroundTruth"
#: The predicted nuclei every pipeline makes and scores.
NUCLEI = "Nuclei"
#: Metadata field matching an image with its ground truth.
STEM = "Stem"
#: Metadata regular expression that extracts :data:`STEM` from a file name.
STEM_REGEX = rf"^(?P<{STEM}>.*)\.(tif|tiff|png)$"
#: The label image the pipelines convert :data:`NUCLEI` into before saving it.
LABELS_IMAGE = "NucleiLabels"

#: Input folder of the images.
IMAGES_FOLDER = "images"
#: Input folder of the ground-truth label images.
MASKS_FOLDER = "masks"
#: Output sub-folder of the saved label images (and never read back as input).
LABELS_FOLDER = "labels"

#: The network module of each model type of :mod:`nucleiseg.model_types`.
NETWORK_MODULES = {"unet": "ClassifyBoundariesUNet", "deepcell": "ClassifyPixelsDeepCell"}

#: The network modules' *Model* choices besides the specialist models a model type names.
MODEL_SHIPPED = "Shipped default"
MODEL_CUSTOM = "Custom model file"

#: Default output image name of each class probability the network modules write.
PROBABILITY_IMAGES = {
    "background": "BackgroundProbability",
    "interior": "InteriorProbability",
    "boundary": "BoundaryProbability",
}
