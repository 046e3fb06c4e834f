"""ClassifyBoundariesUNet: nuclei from a 3-class U-Net (help text built below)."""

from nucleiseg_cellprofiler.help_text import nucleus_module_help
from nucleiseg_cellprofiler.module_base import NucleusSegmentationModule
from nucleiseg_cellprofiler.names import NETWORK_MODULES

__doc__ = nucleus_module_help(
    NETWORK_MODULES["unet"],
    summary="""\
**ClassifyBoundariesUNet** finds nuclei in a greyscale image (e.g. a DNA stain) with a U-Net
that classifies every pixel as *background*, nucleus *interior* or nucleus *boundary*, the
approach of Caicedo et al. 2019. Touching nuclei are separated because the pixels between them
are predicted as boundary.""",
    steps="""\
#. The image is normalized as the network was trained (percentiles of its intensities mapped
   to 0 and 1), so 8-bit, 16-bit and floating-point images all work.
#. The U-Net predicts the three class probabilities for every pixel. Large images are
   processed in overlapping tiles and stitched, so memory use is bounded.
#. Connected pixels whose interior probability exceeds the threshold (and the boosted boundary
   probability) become seeds; each seed grows back over its boundary ring, holes are filled
   and small objects removed.""",
    checksum_note="the model's weights",
    pipeline="unet",
    other_name=NETWORK_MODULES["deepcell"],
    other_pipeline="deepcell",
    other_summary="**ClassifyPixelsDeepCell** segments nuclei with the DeepCell network in the same way;",
    technical="""\
The shipped model is ``models/unet/unet-dsb2018.json``; its card records the training data,
the normalization and the validation scores. Models are trained with
``python -m nucleiseg.train unet``. The network runs with ONNX Runtime (from the model's
``.onnx`` file, written by ``python -m nucleiseg.export``) or with Keras 3 on TensorFlow (see
*Inference engine*), on the CPU or a GPU (see *Device*).""",
    references="""\
-  Ronneberger O, Fischer P, Brox T (2015) "U-Net: Convolutional Networks for Biomedical Image
   Segmentation", *MICCAI 2015*, LNCS 9351, 234-241.
   `(link) <https://doi.org/10.1007/978-3-319-24574-4_28>`__""",
)


# No class docstring: CellProfiler shows the module's __doc__ (above) as help only when the
# class has none. Settings, run and display live in NucleusSegmentationModule.
class ClassifyBoundariesUNet(NucleusSegmentationModule):
    architecture = "unet"
    module_name = NETWORK_MODULES[architecture]
    doi = {
        "Please cite the following when using ClassifyBoundariesUNet (Caicedo et al. 2019, "
        "Evaluation of Deep Learning Strategies for Nucleus Segmentation in Fluorescence Images, "
        "Cytometry A):": "https://doi.org/10.1002/cyto.a.23863",
        "and (Ronneberger et al. 2015, U-Net: Convolutional Networks for Biomedical Image "
        "Segmentation, MICCAI):": "https://doi.org/10.1007/978-3-319-24574-4_28",
    }
