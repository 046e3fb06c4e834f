"""The help text CellProfiler shows for the two network segmentation modules.

CellProfiler shows a plugin file's docstring as the module's help; both network
plugins assign :func:`nucleus_module_help` to their ``__doc__`` so that the
sections they share are written once.
"""

from __future__ import annotations

CAICEDO_2019 = """-  Caicedo JC, Roth J, Goodman A, Becker T, Karhohs KW, Broisin M, Molnar C, McQuin C, Singh S,
   Theis FJ, Carpenter AE (2019) "Evaluation of Deep Learning Strategies for Nucleus
   Segmentation in Fluorescence Images", *Cytometry Part A* 95(9), 952-965.
   `(link) <https://doi.org/10.1002/cyto.a.23863>`__"""


def nucleus_module_help(
    name: str, summary: str, steps: str, checksum_note: str, pipeline: str,
    other_name: str, other_pipeline: str, other_summary: str, technical: str, references: str,
) -> str:
    """The help text (reStructuredText) of a network segmentation plug-in.

    CellProfiler shows a module file's docstring as its help; both network plug-ins
    assign this to their ``__doc__`` so that the sections they share are written once.

    Parameters
    ----------
    name : str
        Module name.
    summary, steps : str
        Opening paragraph and the numbered "How it works" list of this module.
    checksum_note : str
        What is checksummed ("the model's weights", "each network's weights").
    pipeline, other_name, other_pipeline, other_summary : str
        This module's shipped pipeline, the other network module, its pipeline and a
        sentence on it for "See also".
    technical, references : str
        The "Technical notes" paragraph and this module's references (Caicedo et al.
        2019 is added).
    """
    return f"""
{name}
{"=" * len(name)}

{summary}

How it works:

{steps}

The module outputs the nuclei as objects and the three probability maps as images, which sum
to 1 at every pixel. A constant image (e.g. all zero) gives no nuclei. A masked image (from
**Crop** or **MaskImage**, for example) is used inside its mask only: normalization is computed
from the pixels inside, and outside it the probabilities are pure background and there are no
nuclei (those crossing the edge are cut there).

Images taken at another magnification than the training images are handled by *Match nuclei
to the model's training size?*: when the nuclei of a first pass are typically smaller or larger
than those of any training image, the image is resampled to the training images' median
nucleus size, segmented again, and the results are returned at the image's own size.

The model is loaded once per worker process and reused for every image set. Before a run, the
SHA-256 checksum of {checksum_note} is checked against its model card.

|

============ ============ ===============
Supports 2D? Supports 3D? Respects masks?
============ ============ ===============
YES          NO           YES
============ ============ ===============

Recommended pipelines
^^^^^^^^^^^^^^^^^^^^^

-  ``pipelines/{pipeline}.cppipe`` (in this project's repository): input modules for images in an
   ``images/`` folder and ground-truth label images in ``masks/`` (matched by file name),
   **{name}** with the post-processing settings tuned on training images,
   **ConvertObjectsToImage** and **SaveImages** for the label images, **EvaluateObjectF1**
   and **ExportToSpreadsheet**.
-  ``pipelines/{pipeline}-segment.cppipe`` is for images without ground truth: it takes every
   image under the input folder (except folders named ``masks`` or ``labels``), and instead of
   scoring measures each nucleus (**MeasureObjectSizeShape**, **MeasureObjectIntensity**).
-  To drop nuclei cut by the image (or mask) border before measuring them, add **FilterObjects**
   in mode *Image or mask border* after this module; to drop nuclei by size or shape, use its
   *Measurements* mode after **MeasureObjectSizeShape**.
-  ``pipelines/{other_pipeline}.cppipe`` is the same pipeline with **{other_name}**;
   ``pipelines/basic.cppipe`` and ``pipelines/advanced.cppipe`` are the classical
   **IdentifyPrimaryObjects** baselines to compare with.

What the display window shows
^^^^^^^^^^^^^^^^^^^^^^^^^^^^^

The input image, the boundary probability (0 to 1, black to white) and the input image with
the outlines of the nuclei found, titled with their number and the inference engine and
device that ran the network.

See also
^^^^^^^^

{other_summary}
**IdentifyPrimaryObjects** is the classical alternative; **EvaluateObjectF1** scores the
nuclei against ground truth.

Measurements made by this module
^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^

**Image measurements:**

-  *Count*: the number of nuclei found.

**Object measurements:**

-  *Location_Center_X*, *Location_Center_Y*: pixel coordinates of the centre of mass of each
   nucleus (*Location_Center_Z* is 0).
-  *Number_Object_Number*: the object number of each nucleus.

Technical notes
^^^^^^^^^^^^^^^

{technical}

References
^^^^^^^^^^

{CAICEDO_2019}
{references}
"""
