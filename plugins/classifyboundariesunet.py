"""
ClassifyBoundariesUNet
======================

**ClassifyBoundariesUNet** finds nuclei in a greyscale image (e.g. a DNA stain) with a U-Net
that classifies every pixel as *background*, nucleus *interior* or nucleus *boundary*, the
approach of Caicedo et al. 2019. Touching nuclei are separated because the pixels between them
are predicted as boundary.

How it works:

#. The image is normalized as the network was trained (percentiles of its intensities mapped
   to 0 and 1), so 8-bit, 16-bit and floating-point images all work.
#. The U-Net predicts the three class probabilities for every pixel. Large images are
   processed in overlapping tiles and stitched, so memory use is bounded.
#. Connected pixels whose interior probability exceeds the threshold (and the boosted boundary
   probability) become seeds; each seed grows back over its boundary ring, holes are filled
   and small objects removed.

The module outputs the nuclei as objects and the three probability maps as images, which sum
to 1 at every pixel. A constant image (e.g. all zero) gives no nuclei.

The model is loaded once per worker process and reused for every image set. Before a run, the
SHA-256 checksum of the model's weights is checked against its model card.

|

============ ============ ===============
Supports 2D? Supports 3D? Respects masks?
============ ============ ===============
YES          NO           NO
============ ============ ===============

Recommended pipelines
^^^^^^^^^^^^^^^^^^^^^

-  ``pipelines/unet.cppipe`` (in this project's repository): input modules for images in an
   ``images/`` folder and ground-truth label images in ``masks/`` (matched by file name),
   **ClassifyBoundariesUNet** with the post-processing settings tuned on training images,
   **ConvertObjectsToImage** and **SaveImages** for the label images, **EvaluateObjectF1**
   and **ExportToSpreadsheet**. Without ground truth, remove **EvaluateObjectF1** and the
   *GroundTruth* objects from **NamesAndTypes**.
-  ``pipelines/deepcell.cppipe`` is the same pipeline with **ClassifyPixelsDeepCell**;
   ``pipelines/basic.cppipe`` and ``pipelines/advanced.cppipe`` are the classical
   **IdentifyPrimaryObjects** baselines to compare with.

What the display window shows
^^^^^^^^^^^^^^^^^^^^^^^^^^^^^

The input image, the boundary probability (0 to 1, black to white) and the input image with
the outlines of the nuclei found, titled with their number and the device that ran the
network.

See also
^^^^^^^^

**ClassifyPixelsDeepCell** segments nuclei with the DeepCell network in the same way;
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

The shipped model is ``models/unet/unet-dsb2018.json``; its card records the training data,
the normalization and the validation scores. Models are trained with
``python -m nucleiseg.train unet``. The network runs with Keras 3 on TensorFlow, on the CPU or
a GPU (see *Device*).

References
^^^^^^^^^^

-  Caicedo JC, Roth J, Goodman A, Becker T, Karhohs KW, Broisin M, Molnar C, McQuin C, Singh S,
   Theis FJ, Carpenter AE (2019) "Evaluation of Deep Learning Strategies for Nucleus
   Segmentation in Fluorescence Images", *Cytometry Part A* 95(9), 952-965.
   `(link) <https://doi.org/10.1002/cyto.a.23863>`__
-  Ronneberger O, Fischer P, Brox T (2015) "U-Net: Convolutional Networks for Biomedical Image
   Segmentation", *MICCAI 2015*, LNCS 9351, 234-241.
   `(link) <https://doi.org/10.1007/978-3-319-24574-4_28>`__
"""

from nucleiseg.cellprofiler_module import NucleusSegmentationModule


# No class docstring: CellProfiler shows the module docstring above as help only when the
# class has none. Settings, run and display live in NucleusSegmentationModule.
class ClassifyBoundariesUNet(NucleusSegmentationModule):
    module_name = "ClassifyBoundariesUNet"
    variable_revision_number = 1
    architecture = "unet"
    doi = {
        "Please cite the following when using ClassifyBoundariesUNet (Caicedo et al. 2019, "
        "Evaluation of Deep Learning Strategies for Nucleus Segmentation in Fluorescence Images, "
        "Cytometry A):": "https://doi.org/10.1002/cyto.a.23863",
        "and (Ronneberger et al. 2015, U-Net: Convolutional Networks for Biomedical Image "
        "Segmentation, MICCAI):": "https://doi.org/10.1007/978-3-319-24574-4_28",
    }

    def upgrade_settings(self, setting_values, variable_revision_number, module_name):
        # Revision 1 is the first; later revisions will convert older setting lists here.
        return setting_values, variable_revision_number
