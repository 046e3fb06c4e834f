"""ClassifyPixelsDeepCell: nuclei from DeepCell's 61 x 61 patch network (help text built below)."""

from cellprofiler_core.setting import ValidationError
from cellprofiler_core.setting.choice import Choice
from cellprofiler_core.setting.text import Integer

from nucleiseg.model_types import DENSE
from nucleiseg.model_types.deepcell import DEFAULT_WINDOW, PATCH_MODE
from nucleiseg_cellprofiler.help_text import nucleus_module_help
from nucleiseg_cellprofiler.module_base import NucleusSegmentationModule
from nucleiseg_cellprofiler.names import NETWORK_MODULES

__doc__ = nucleus_module_help(
    NETWORK_MODULES["deepcell"],
    summary="""\
**ClassifyPixelsDeepCell** finds nuclei in a greyscale image (e.g. a DNA stain) with the
DeepCell network of Van Valen et al. 2016, as evaluated by Caicedo et al. 2019. The network
looks at the 61 x 61 pixel patch around every pixel and classifies the pixel as *background*,
nucleus *interior* or nucleus *boundary*; touching nuclei are separated where pixels between
them are predicted as boundary.""",
    steps="""\
#. The image is normalized, either by intensity percentiles (as the shipped model was
   trained) or by DeepCell's original scheme (divide by the median, subtract the local mean
   over 61 x 61 pixels).
#. The network predicts the three class probabilities for every pixel. With an ensemble
   model, the probabilities of its networks are averaged.
#. Connected pixels whose interior probability exceeds the threshold (and the boosted
   boundary probability) become seeds; each seed grows back over its boundary ring, holes
   are filled and small objects removed.

**Inference modes.** The published method classifies one patch at a time. The same weights
can instead run *fully convolutionally* (pooling and convolutions rewritten with dilations),
which computes exactly the same per-pixel result for the whole image in one pass, hundreds of
times faster. The patch-by-patch mode is offered to reproduce the published procedure.""",
    checksum_note="each network's weights",
    pipeline="deepcell",
    other_name=NETWORK_MODULES["unet"],
    other_pipeline="unet",
    other_summary="**ClassifyBoundariesUNet** segments nuclei with a U-Net in the same way;",
    technical="""\
The shipped model is ``models/deepcell/deepcell-dsb2018.json``, an ensemble of networks
whose card records the training data, the normalization and the validation scores. Models
are trained with ``python -m nucleiseg.train deepcell``. The networks run with ONNX Runtime
(from their ``.onnx`` files, written by ``python -m nucleiseg.export``) or with Keras 3 on
TensorFlow (see *Inference engine*), on the CPU or a GPU (see *Device*).""",
    references="""\
-  Van Valen DA, Kudo T, Lane KM, Macklin DN, Quach NT, DeFelice MM, Maayan I, Tanouchi Y,
   Ashley EA, Covert MW (2016) "Deep Learning Automates the Quantitative Analysis of
   Individual Cells in Live-Cell Imaging Experiments", *PLoS Computational Biology* 12(11),
   e1005177. `(link) <https://doi.org/10.1371/journal.pcbi.1005177>`__""",
)

MODE_DENSE = "Fully convolutional (fast)"
MODE_PATCH = "Patch by patch (as published; slow)"
# The deepcell model type's inference mode of each choice.
INFERENCE_MODES = {MODE_DENSE: DENSE, MODE_PATCH: PATCH_MODE}
NORMALIZATION_PERCENTILE = "Percentile (as trained)"
NORMALIZATION_DEEPCELL = "DeepCell original (median / local mean)"
DEFAULT_ENSEMBLE_SIZE = 5


# No class docstring: CellProfiler shows the module's __doc__ (above) as help only when the
# class has none. Shared settings, run and display live in NucleusSegmentationModule.
class ClassifyPixelsDeepCell(NucleusSegmentationModule):
    architecture = "deepcell"
    module_name = NETWORK_MODULES[architecture]
    doi = {
        "Please cite the following when using ClassifyPixelsDeepCell (Van Valen et al. 2016, "
        "Deep Learning Automates the Quantitative Analysis of Individual Cells in Live-Cell "
        "Imaging Experiments, PLoS Comput Biol):": "https://doi.org/10.1371/journal.pcbi.1005177",
        "and (Caicedo et al. 2019, Evaluation of Deep Learning Strategies for Nucleus "
        "Segmentation in Fluorescence Images, Cytometry A):": "https://doi.org/10.1002/cyto.a.23863",
    }

    def create_extra_settings(self):
        self.ensemble = Integer(
            "Ensemble size",
            DEFAULT_ENSEMBLE_SIZE,
            minval=1,
            doc=f"""\
How many networks of an ensemble model to run; their probabilities are averaged. Between 1
and the number of networks the model holds ({DEFAULT_ENSEMBLE_SIZE} for the shipped model, as
in the DeepCell paper; a single-network model needs 1). Each network adds its full
running time; fewer networks are faster and usually slightly less accurate. With the
shipped snapshot ensembles, whose networks are much alike, flips and rotations (*Average over
flips and rotations?*) gain more than extra networks do: on the validation images the model for
BBBC039-like images scored a mean F1 of 0.668 with 2 networks and flips and rotations (16
network runs per image) against 0.661 with all 5 networks (5 runs).""",
        )
        self.inference_mode = Choice(
            "Inference mode",
            list(INFERENCE_MODES),
            MODE_DENSE,
            doc=f"""\
*{MODE_DENSE}*: run the network once over the whole image (in tiles for large images),
with its pooling and convolutions rewritten with dilations. Every pixel gets exactly what the
patch network gives for the 61 x 61 patch centred on it.

*{MODE_PATCH}*: classify the 61 x 61 patch around every pixel separately, as published.
Same result, hundreds of times slower; for reproducing the original procedure. The tile and
batch settings do not apply to this mode (patches go to the network 512 at a time).""",
        )
        self.normalization_method = Choice(
            "Normalization",
            [NORMALIZATION_PERCENTILE, NORMALIZATION_DEEPCELL],
            NORMALIZATION_PERCENTILE,
            doc=f"""\
*{NORMALIZATION_PERCENTILE}*: map the lower and upper intensity percentiles to 0 and 1, as
the shipped model was trained.

*{NORMALIZATION_DEEPCELL}*: DeepCell's original scheme: divide by the image median, then
subtract the mean over the {DEFAULT_WINDOW} x {DEFAULT_WINDOW} window around each pixel. Use
it with models trained with it (their card says ``"method": "deepcell"``); a model trained
with percentiles sees different values and segments worse.""",
        )

    def extra_settings(self):
        return [self.ensemble, self.inference_mode, self.normalization_method]

    def uses_percentiles(self):
        return self.normalization_method.value == NORMALIZATION_PERCENTILE

    def normalization_setting(self):
        return self.normalization_method

    def normalization(self):
        if self.uses_percentiles():
            return super().normalization()
        return {"method": "deepcell", "window": DEFAULT_WINDOW}

    def ensemble_size(self):
        return int(self.ensemble.value)

    def validate_extra(self, pipeline, members):
        if self.ensemble_size() > len(members):
            raise ValidationError(
                f"Ensemble size {self.ensemble_size()} is larger than the {len(members)} network(s) of {self.model_path()}",
                self.ensemble,
            )

    def network_mode(self):
        return INFERENCE_MODES[self.inference_mode.value]
