"""The CellProfiler module base class of the two network segmentation plugins.

:class:`NucleusSegmentationModule` holds the settings, validation, run,
measurements and display shared by **ClassifyBoundariesUNet** and
**ClassifyPixelsDeepCell**; each plugin adds only its name, citations, help
text and its own few settings. It lives in an installed package rather than in
``plugins/`` (where CellProfiler imports every ``*.py`` not starting with an
underscore as a module) so that both plugins import one copy of it wherever the
plugins folder is.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from cellprofiler_core.image import Image
from cellprofiler_core.module.image_segmentation import ImageSegmentation
from cellprofiler_core.object import Objects
from cellprofiler_core.setting import Binary, ValidationError
from cellprofiler_core.setting.choice import Choice
from cellprofiler_core.setting.subscriber import ImageSubscriber
from cellprofiler_core.setting.text import Float, ImageName, Integer, LabelName, Pathname

# None of these import an inference engine (seconds): CellProfiler imports every plugin at start-up.
from nucleiseg import cards, devices, engines, model_types
from nucleiseg.inference import check_greyscale, segment
from nucleiseg.postprocess import PostprocessSettings

from .names import IMAGE, MODEL_CUSTOM, MODEL_SHIPPED, NUCLEI, PROBABILITY_IMAGES
DEVICE_AUTOMATIC = "Automatic"
DEVICE_CPU = "CPU"
DEVICE_GPU = "GPU"
_DEVICE_KINDS = {DEVICE_AUTOMATIC: "auto", DEVICE_CPU: "cpu", DEVICE_GPU: "gpu"}
ENGINE_AUTOMATIC = "Automatic"
ENGINE_ONNXRUNTIME = "ONNX Runtime"
ENGINE_TENSORFLOW = "TensorFlow"
_ENGINES = {ENGINE_AUTOMATIC: engines.AUTO, ENGINE_ONNXRUNTIME: engines.ONNXRUNTIME, ENGINE_TENSORFLOW: engines.TENSORFLOW}

_DEFAULT_POSTPROCESS = PostprocessSettings()


class ModelCardPathname(Pathname):
    """A model card path; only emptiness is checked here, the card itself in ``validate_module``."""

    def test_valid(self, pipeline):
        # Pathname would say "Can't find file"; the module's own check says more (which file of
        # an ensemble, which checksum), so leave existence to it.
        if not self.value.strip():
            raise ValidationError("Choose a model card file (.json)", self)


class NucleusSegmentationModule(ImageSegmentation):
    """Base of the modules that turn a greyscale image into nuclei with a background / interior / boundary network.

    Subclasses set :attr:`architecture` (a name of :mod:`nucleiseg.model_types`:
    its shipped cards are the module's models, and the architecture a model
    card must declare), ``module_name`` (``NETWORK_MODULES[architecture]``)
    and ``doi``, and may add settings through the ``extra_*`` hooks and choose
    the model type's inference mode with :meth:`network_mode`. The settings
    revision and its upgrades live here because the settings they order are
    the base class's.
    """

    category = "Object Processing"
    architecture = ""  # a key of names.NETWORK_MODULES
    # 2: "Use the model's tuned post-processing?" and the foreground threshold added; then test-time
    # augmentation, without a new revision (upgrade_settings tells the two by their length).
    # 3: "Inference engine", before the device.
    # 4: "Match nuclei to the model's training size?", last.
    variable_revision_number = 4

    # ---- settings --------------------------------------------------------------------------

    def create_settings(self):
        self.x_name = ImageSubscriber(
            "Select the input image",
            IMAGE,
            doc="""\
The greyscale image in which to find nuclei, e.g. a DNA stain (Hoechst, DAPI). It must be
2-D and single-channel; convert colour images with **ColorToGray** first. Any bit depth works:
the image is normalized as the network was trained, so its scale does not matter.""",
        )
        self.y_name = LabelName(
            "Name the output objects",
            NUCLEI,
            doc="Name of the nucleus objects this module creates, for use by later modules.",
        )
        self.background_name = ImageName(
            "Name the background probability image",
            PROBABILITY_IMAGES["background"],
            doc="""\
Name of the output image holding, for every pixel, the network's probability (0 to 1) that
the pixel is background. The three probability images sum to 1 at every pixel.""",
        )
        self.interior_name = ImageName(
            "Name the interior probability image",
            PROBABILITY_IMAGES["interior"],
            doc="""\
Name of the output image holding each pixel's probability of lying inside a nucleus, away
from its edge. Thresholding it gives the seeds of the nuclei.""",
        )
        self.boundary_name = ImageName(
            "Name the boundary probability image",
            PROBABILITY_IMAGES["boundary"],
            doc="""\
Name of the output image holding each pixel's probability of lying on the edge of a nucleus,
including where two nuclei touch. Useful to inspect why touching nuclei were or were not
split.""",
        )
        specialists = model_types.get(self.architecture).specialist_cards
        specialist_help = "".join(
            f"\n\n*{label}*: shipped too, trained further on images of one kind only (model card "
            f"``{path.name}``); it is more accurate on such images and less on others."
            for label, path in specialists.items()
        )
        self.model_choice = Choice(
            "Model",
            [MODEL_SHIPPED, *specialists, MODEL_CUSTOM],
            MODEL_SHIPPED,
            doc=f"""\
*{MODEL_SHIPPED}*: the model trained for this project on fluorescence images of many kinds
and shipped in its ``models/`` folder (the folder can be moved with the environment variable
``NUCLEISEG_MODELS``).{specialist_help}

*{MODEL_CUSTOM}*: a model of your own, given by its model card (a ``.json`` file next to
its ``.weights.h5`` file, as written by ``python -m nucleiseg.train``), or an ensemble
card listing several such networks (``python -m nucleiseg.ensemble``), whose probabilities
are averaged. The weights' SHA-256 checksum recorded in each card is checked before the
pipeline runs, so a changed or damaged weights file is caught.""",
        )
        self.model_file = ModelCardPathname(
            "Model card file",
            "",
            wildcard="Model card (*.json)|*.json",
            doc="""\
*(Used only for a custom model)* Path of the model card (``.json``) of the model to use.
A relative path is taken from the folder CellProfiler was started in, so prefer an
absolute path. The card must describe a network of the kind this module runs.""",
        )
        self.create_extra_settings()
        self.low_percentile = Float(
            "Lower normalization percentile",
            0.1,
            minval=0.0,
            maxval=100.0,
            doc="""\
Intensity normalization maps this percentile of the image's intensities to 0 and the upper
percentile to 1 (values beyond are kept, not clipped). Use the values the model was trained
with (recorded in its model card; 0.1 and 99.9 for the shipped models): others change
what the network sees.""",
        )
        self.high_percentile = Float(
            "Upper normalization percentile",
            99.9,
            minval=0.0,
            maxval=100.0,
            doc="Intensity percentile mapped to 1; must be above the lower percentile.",
        )
        self.use_model_postprocess = Binary(
            "Use the model's tuned post-processing?",
            True,
            doc="""\
Select *Yes* to turn probabilities into nuclei with the post-processing settings recorded in
the model card (its ``postprocess`` field, chosen on training images by
``python -m nucleiseg.tune_postprocess`` for that model). This is the recommended choice:
the best settings differ between models. A card may also make the minimum size relative to
the nuclei found in each image (``relative_min_size``), so that small nuclei of a lower
magnification are not removed as debris; the settings below use a fixed minimum size.

Select *No* to set the interior threshold, boundary boost, minimum size, hole filling,
dilation and foreground threshold yourself, e.g. for images whose nuclei are much dimmer or
more crowded than the training images.""",
        )
        self.interior_threshold = Float(
            "Interior probability threshold",
            _DEFAULT_POSTPROCESS.interior_threshold,
            minval=0.0,
            maxval=1.0,
            doc="""\
A pixel seeds a nucleus when its interior probability is above this threshold (and above
its boosted boundary probability). Connected seed pixels form one nucleus. Lower values
find dimmer nuclei and give larger seeds; must lie strictly between 0 and 1.""",
        )
        self.boundary_boost = Float(
            "Boundary boost",
            _DEFAULT_POSTPROCESS.boundary_boost,
            minval=0.0,
            doc="""\
The boundary probability is multiplied by this factor before it competes with the interior
probability. Values above 1 cut touching nuclei apart more eagerly (risking splitting
single nuclei); values below 1 merge more. Must be above 0.""",
        )
        self.min_size = Integer(
            "Minimum nucleus size (pixels)",
            _DEFAULT_POSTPROCESS.min_size,
            minval=0,
            doc="Nuclei smaller than this area in pixels (after dilation) are removed; 0 keeps all.",
        )
        self.fill_holes = Binary(
            "Fill holes in nuclei?",
            _DEFAULT_POSTPROCESS.fill_holes,
            doc="Select *Yes* to fill holes inside each nucleus (pixels enclosed by one nucleus).",
        )
        self.dilation = Integer(
            "Dilation (pixels)",
            _DEFAULT_POSTPROCESS.dilation,
            minval=0,
            doc="""\
How far, in pixels, each seed grows back over the boundary ring that the network marks
around every nucleus. Growth stays within pixels predicted to be nucleus (interior plus
boundary more likely than background, see the foreground threshold) and stops where
neighbours meet. The networks were trained with a 1-pixel boundary; 2 recovers it with a
small margin.""",
        )
        self.foreground_threshold = Float(
            "Foreground probability threshold",
            _DEFAULT_POSTPROCESS.foreground_threshold,
            minval=0.0,
            maxval=1.0,
            doc="""\
Growing seeds may take a pixel only when its interior plus boundary probability is above
this threshold. 0.5 means "more likely nucleus than background". The networks weight the
boundary class heavily in training and so paint it slightly outside the true edge; a
higher value (e.g. 0.8 to 0.9) pulls outlines back onto the edge. Must lie strictly
between 0 and 1.""",
        )
        self.tile_size = Integer(
            "Tile size (pixels)",
            1024,
            minval=16,
            doc="""\
Images larger than this are predicted in overlapping square tiles of this edge length and
stitched, so memory stays bounded for any image size. Smaller tiles use less memory;
images up to this size are predicted in one pass.""",
        )
        self.tile_overlap = Integer(
            "Tile overlap (pixels)",
            64,
            minval=0,
            doc="""\
Pixels shared by neighbouring tiles; half of it is discarded on each side of a seam, so
nuclei on seams are predicted with context. Must be smaller than the tile size.""",
        )
        self.batch_size = Integer(
            "Batch size (tiles)",
            1,
            minval=1,
            doc="Tiles sent to the network at once. Larger batches can be faster on a GPU but need more memory.",
        )
        self.augment = Binary(
            "Average over flips and rotations?",
            False,
            doc="""\
Select *Yes* for test-time augmentation: the network is run on the image's 8 flips and
90° rotations and the probabilities, turned back, are averaged. Outlines become a little
smoother and more accurate and fewer touching nuclei are merged, at 8 times the
computation. *No* runs the network once (the speed the benchmark reports).""",
        )
        self.match_size = Binary(
            "Match nuclei to the model's training size?",
            True,
            doc="""\
Select *Yes* to let the module correct for a magnification unlike the training images'. It
first finds the nuclei as usual; when their typical diameter (that of the nucleus the median
nucleus pixel lies in) lies outside the range of the images the model was trained on (recorded
in its card as ``nucleus_diameters``: about 11 to 52 pixels for the shipped general models), the image is resampled so that its nuclei have the
training images' median size, segmented again, and the nuclei and probability images are
brought back to the image's own size. This recovers many nuclei of images taken at a lower
magnification, which the network otherwise misses or merges. Images whose nuclei are within
the range (most) run once; a resampled image costs a second pass, up to four times the first.

Select *No* to segment every image once at its own size. A model card without the record
(written before this setting existed) needs *No*, or the record added with
``python -m nucleiseg.nucleus_size CARD``.""",
        )
        self.engine = Choice(
            "Inference engine",
            [ENGINE_AUTOMATIC, ENGINE_ONNXRUNTIME, ENGINE_TENSORFLOW],
            ENGINE_AUTOMATIC,
            doc=f"""\
What runs the network. Both give the same probabilities (within 0.0001) and so the same
nuclei.

*{ENGINE_ONNXRUNTIME}*: the model's ONNX files (``.onnx`` beside its weights, named in its
card; the shipped models have them; ``python -m nucleiseg.export CARD --onnx`` writes them
for a model of your own) run by ONNX Runtime. It needs only the ``onnxruntime`` package
(``pip install 'nucleiseg[onnx]'``), not TensorFlow, so it installs in a CellProfiler
environment in a fraction of the space, and starts in a fraction of the time.
*{ENGINE_TENSORFLOW}*: the Keras network built from the weights, run by TensorFlow
(``pip install 'nucleiseg[tensorflow]'``).
*{ENGINE_AUTOMATIC}*: ONNX Runtime when it is installed and the model has ONNX files,
otherwise TensorFlow.

The module reports an error naming what to install when the chosen engine is missing.""",
        )
        self.device = Choice(
            "Device",
            [DEVICE_AUTOMATIC, DEVICE_CPU, DEVICE_GPU],
            DEVICE_AUTOMATIC,
            doc=f"""\
Processor that runs the network.

*{DEVICE_AUTOMATIC}*: the first GPU if the inference engine can use one, otherwise the CPU.
*{DEVICE_CPU}*: always the CPU.
*{DEVICE_GPU}*: the GPU with the index below. When this machine has no usable GPU (or the
engine is a CPU-only build: ``tensorflow-cpu``, or ``onnxruntime`` rather than
``onnxruntime-gpu``), the module reports an error instead of quietly running many times
slower on the CPU; choose *{DEVICE_AUTOMATIC}* for pipelines that must run on machines with
and without a GPU.

ONNX Runtime uses a GPU through its CUDA provider. TensorFlow takes GPU memory as needed
("memory growth"), not all at once, so other programs can share the GPU.""",
        )
        self.gpu_index = Integer(
            "GPU index",
            0,
            minval=0,
            doc=f"*(Used only when the device is {DEVICE_GPU})* Which GPU to use, counted from 0.",
        )

    def create_extra_settings(self):
        """Hook: create the subclass's own settings (listed by :meth:`extra_settings`)."""

    def extra_settings(self) -> list:
        """Hook: the subclass's own settings, saved between the model file and the percentiles."""
        return []

    def visible_extra_settings(self) -> list:
        return self.extra_settings()

    def uses_percentiles(self) -> bool:
        """Whether the normalization percentile settings apply."""
        return True

    def normalization_setting(self):
        """The setting a normalization warning points at."""
        return self.low_percentile

    def settings(self):
        return [
            self.x_name,
            self.y_name,
            self.background_name,
            self.interior_name,
            self.boundary_name,
            self.model_choice,
            self.model_file,
            *self.extra_settings(),
            self.low_percentile,
            self.high_percentile,
            self.use_model_postprocess,
            *self.postprocess_setting_list(),
            self.tile_size,
            self.tile_overlap,
            self.batch_size,
            self.augment,
            self.engine,
            self.device,
            self.gpu_index,
            self.match_size,
        ]

    def visible_settings(self):
        visible = [self.x_name, self.y_name, self.background_name, self.interior_name, self.boundary_name, self.model_choice]
        if self.model_choice.value == MODEL_CUSTOM:
            visible.append(self.model_file)
        visible += self.visible_extra_settings()
        if self.uses_percentiles():
            visible += [self.low_percentile, self.high_percentile]
        visible.append(self.use_model_postprocess)
        if not self.use_model_postprocess.value:
            visible += self.postprocess_setting_list()
        visible += [
            self.tile_size,
            self.tile_overlap,
            self.batch_size,
            self.augment,
            self.match_size,
            self.engine,
            self.device,
        ]
        if self.device.value == DEVICE_GPU:
            visible.append(self.gpu_index)
        return visible

    def postprocess_setting_list(self) -> list:
        """The settings a user sets when not using the model's post-processing."""
        return [
            self.interior_threshold,
            self.boundary_boost,
            self.min_size,
            self.fill_holes,
            self.dilation,
            self.foreground_threshold,
        ]

    def upgrade_settings(self, setting_values, variable_revision_number, module_name):
        extra = len(self.extra_settings())
        if variable_revision_number == 1:
            # Revision 1 always used the values it saved, so keep them ("No"), and its growth limit
            # was "more likely nucleus than background" (0.5).
            at = 9 + extra  # after the two percentiles
            old = setting_values
            setting_values = old[:at] + ["No"] + old[at:at + 5] + ["0.5"] + old[at + 5:]
            variable_revision_number = 2
        if variable_revision_number == 2:
            if len(setting_values) == 21 + extra:
                # Test-time augmentation came after revision 2 without a revision of its own, so the
                # first revision-2 pipelines lack it; they ran the network once.
                at = 19 + extra  # after the batch size
                setting_values = setting_values[:at] + ["No"] + setting_values[at:]
            # Revision 2 ran TensorFlow; Automatic keeps doing so where TensorFlow is all there is, and
            # elsewhere gives the same probabilities (within 1e-4) from ONNX Runtime.
            at = 20 + extra  # after test-time augmentation
            setting_values = setting_values[:at] + [ENGINE_AUTOMATIC] + setting_values[at:]
            variable_revision_number = 3
        if variable_revision_number == 3:
            # Revision 3 segmented every image at its own size.
            setting_values = setting_values + ["No"]
            variable_revision_number = 4
        return setting_values, variable_revision_number

    def volumetric(self):
        return False

    def probability_settings(self) -> dict:
        """The output image setting of each class probability, by class name."""
        return {"background": self.background_name, "interior": self.interior_name, "boundary": self.boundary_name}

    def class_channels(self) -> dict[str, int]:
        """Channel of each class of :meth:`probability_settings` in the model type's output.

        Raises
        ------
        ValueError
            When the model type does not predict one of those classes.
        """
        classes = model_types.get(self.architecture).classes
        missing = [name for name in self.probability_settings() if name not in classes]
        if missing:
            raise ValueError(f"{self.module_name}: the {self.architecture!r} model type predicts {', '.join(classes)}, "
                             f"not {', '.join(missing)}")
        return {name: classes.index(name) for name in self.probability_settings()}

    def is_object_identification_module(self):
        return True

    # ---- parameters ------------------------------------------------------------------------

    def model_path(self) -> Path:
        """The model card the settings select."""
        if self.model_choice.value == MODEL_CUSTOM:
            return Path(os.path.expanduser(self.model_file.value.strip()))
        specialists = model_types.get(self.architecture).specialist_cards
        if self.model_choice.value in specialists:
            return Path(specialists[self.model_choice.value])
        return Path(model_types.get(self.architecture).default_card)

    def ensemble_size(self) -> int | None:
        """Hook: how many networks of an ensemble to use (None: all)."""
        return None

    def normalization(self) -> dict:
        """The normalization the settings describe (percentiles by default)."""
        return {"method": "percentile", "low": float(self.low_percentile.value), "high": float(self.high_percentile.value)}

    def postprocess_settings(self) -> PostprocessSettings:
        """Post-processing settings: the model card's, or the user's (ValueError when invalid)."""
        if self.use_model_postprocess.value:
            return cards.tuned_postprocess(self.model_path())
        return PostprocessSettings(
            interior_threshold=float(self.interior_threshold.value),
            boundary_boost=float(self.boundary_boost.value),
            min_size=int(self.min_size.value),
            fill_holes=bool(self.fill_holes.value),
            dilation=int(self.dilation.value),
            foreground_threshold=float(self.foreground_threshold.value),
        )

    def engine_choice(self) -> str:
        """The core's name of the chosen inference engine (``"auto"``, ``"onnxruntime"``, ``"tensorflow"``)."""
        return _ENGINES[self.engine.value]

    def engine_name(self, members: list[tuple[Path, dict]]) -> str:
        """The engine that will run the model of ``members`` (raises engines.EngineNotInstalled, cards.ModelError)."""
        return engines.choose(self.engine_choice(), members, self.model_path())

    def device_kind(self) -> str:
        """The core's name of the chosen device (``"auto"``, ``"cpu"``, ``"gpu"``)."""
        return _DEVICE_KINDS[self.device.value]

    def device_name(self, engine: str = engines.TENSORFLOW) -> str:
        """Device name for the device settings and ``engine`` (raises devices.DeviceError)."""
        return devices.resolve(self.device_kind(), int(self.gpu_index.value), engine=engine)

    # ---- validation ------------------------------------------------------------------------

    def validate_module(self, pipeline):
        names = [setting.value for setting in self.probability_settings().values()]
        if len(set(names)) < len(names):
            raise ValidationError("The probability images need different names, one for each class", self.boundary_name)
        if self.uses_percentiles() and not self.low_percentile.value < self.high_percentile.value:
            raise ValidationError("The lower normalization percentile must be below the upper one", self.high_percentile)
        if not self.use_model_postprocess.value:
            try:
                self.postprocess_settings()
            except ValueError as error:
                # The core's messages start with the offending field's name.
                fields = {"interior": self.interior_threshold, "boundary": self.boundary_boost,
                          "foreground": self.foreground_threshold}
                setting = next((s for key, s in fields.items() if str(error).startswith(key)), self.min_size)
                raise ValidationError(str(error), setting)
        if self.tile_overlap.value >= self.tile_size.value:
            raise ValidationError("The tile overlap must be smaller than the tile size", self.tile_overlap)
        members = self.validate_model()
        if self.use_model_postprocess.value:
            try:
                self.postprocess_settings()
            except cards.ModelError as error:
                raise ValidationError(str(error), self.use_model_postprocess)
        if self.match_size.value:
            try:
                cards.require_nucleus_diameters(self.model_path())
            except cards.ModelError as error:
                raise ValidationError(str(error), self.match_size)
        self.validate_extra(pipeline, members)
        try:
            engine = self.engine_name(members[: self.ensemble_size()])
        except (engines.EngineNotInstalled, cards.ModelError) as error:
            raise ValidationError(f"{self.module_name}: {error}", self.engine)
        if self.device.value == DEVICE_GPU:
            try:
                self.device_name(engine)
            except devices.DeviceError as error:
                raise ValidationError(str(error), self.gpu_index if isinstance(error, devices.GpuIndexError) else self.device)

    def validate_model(self) -> list[tuple[Path, dict]]:
        """Check the chosen model (cards, checksums, architecture); returns its member cards."""
        setting = self.model_file if self.model_choice.value == MODEL_CUSTOM else self.model_choice
        path = self.model_path()
        try:
            members = cards.verify(path)
        except cards.ModelError as error:
            hint = ""
            if self.model_choice.value != MODEL_CUSTOM:
                hint = " (the shipped model is missing: train it, or choose a custom model file)"
            raise ValidationError(f"{self.module_name}: {error}{hint}", setting)
        for card_path, card in members:
            name = card["architecture"].get("name")
            if name != self.architecture:
                raise ValidationError(
                    f"{self.module_name}: {card_path} describes a {name!r} network, this module runs {self.architecture!r} networks",
                    setting,
                )
        return members

    def validate_extra(self, pipeline, members: list[tuple[Path, dict]]) -> None:
        """Hook: validate the subclass's own settings against the model's member cards."""

    def validate_module_warnings(self, pipeline):
        # A mismatch with the card's normalization still runs, but it changes what the network
        # sees; warn rather than fail since it may be intended.
        try:
            card = cards.member_cards(self.model_path())[0][1]
        except cards.ModelError:
            return
        trained = card.get("normalization", {})
        used = self.normalization()
        if trained.get("method") != used["method"]:
            raise ValidationError(
                f"The model was trained with {trained.get('method')!r} normalization, this module is set to {used['method']!r}",
                self.normalization_setting(),
            )
        if used["method"] == "percentile" and (
            not np.isclose(trained.get("low", 0.1), used["low"]) or not np.isclose(trained.get("high", 99.9), used["high"])
        ):
            raise ValidationError(
                f"The model was trained with percentiles {trained.get('low')} and {trained.get('high')}; "
                f"{used['low']:g} and {used['high']:g} change what the network sees",
                self.low_percentile,
            )
        # A snapshot member's own card keeps the settings its training validated with; the tuned
        # ones are in its ensemble's card.
        member_of = cards.read_card(self.model_path()).get("member_of", {}).get("ensemble")
        if member_of and self.use_model_postprocess.value:
            raise ValidationError(
                f"{self.model_path().name} is one network of the ensemble {member_of}: its card's post-processing "
                f"is what training validated with, not settings tuned for it. Choose {member_of}, enter the "
                "settings here, or tune them for this network (python -m nucleiseg.tune_postprocess)",
                self.use_model_postprocess,
            )

    # ---- running ---------------------------------------------------------------------------

    def load_model(self) -> cards.LoadedModel:
        """The chosen model on the chosen engine and device, loaded once per process (see :func:`nucleiseg.cards.load`)."""
        return cards.load(self.model_path(), ensemble_size=self.ensemble_size(), engine=self.engine_choice(),
                          device=self.device_kind(), gpu_index=int(self.gpu_index.value))

    def network_mode(self) -> str:
        """Hook: the model type's inference mode the settings choose (:data:`nucleiseg.model_types.DENSE` here)."""
        return model_types.DENSE

    def run(self, workspace):
        image = workspace.image_set.get_image(self.x_name.value)
        pixels = image.pixel_data
        if image.volumetric:
            raise ValueError(
                f"{self.module_name}: {self.x_name.value!r} is a 3-D image of shape {pixels.shape}; "
                "this module segments 2-D images only"
            )
        # Checked here as well as in the core so that the error names this module and its input.
        pixels = check_greyscale(pixels, name=f"{self.module_name}: input image {self.x_name.value!r}")
        # A masked image (e.g. from Crop or MaskImage) is used inside its mask only.
        mask = image.mask if image.has_mask else None
        settings = self.postprocess_settings()

        # Headless runs do not call validate_module, so the engine, device and model are checked here
        # too; each raises an error that names the problem (what to install, no GPU, file, checksum).
        model = self.load_model()
        probabilities, labels = segment(
            pixels,
            model,
            settings,
            normalization=self.normalization(),
            tile=int(self.tile_size.value),
            overlap=int(self.tile_overlap.value),
            batch_size=int(self.batch_size.value),
            augment=self.augment.value,
            mask=mask,
            mode=self.network_mode(),
            match_size=self.match_size.value,
        )

        channels = self.class_channels()
        for class_name, setting in self.probability_settings().items():
            output = Image(np.ascontiguousarray(probabilities[..., channels[class_name]]), parent_image=image, convert=False)
            workspace.image_set.add(setting.value, output)

        objects = Objects()
        objects.segmented = labels
        objects.parent_image = image
        workspace.object_set.add_objects(objects, self.y_name.value)
        self.add_measurements(workspace)

        if self.show_window:
            data = workspace.display_data
            data.image = pixels
            data.boundary = probabilities[..., channels["boundary"]]
            data.labels = labels
            data.count = int(labels.max())
            data.device = f"{engines.LABELS[model.engine]}, {model.device or 'default device'}"

    def display(self, workspace, figure):
        data = workspace.display_data
        figure.set_subplots((3, 1))
        axes = figure.subplot_imshow_grayscale(0, 0, data.image, title=f"Input image: {self.x_name.value}")
        figure.subplot_imshow_grayscale(
            1,
            0,
            data.boundary,
            title=f"{self.boundary_name.value} (0 to 1)",
            normalize=False,
            vmin=0.0,
            vmax=1.0,
            sharexy=axes,
        )
        figure.subplot_imshow_grayscale(
            2,
            0,
            data.image,
            title=f"{self.y_name.value}: {data.count} objects ({data.device})",
            cplabels=[dict(name=self.y_name.value, labels=[data.labels])],
            sharexy=axes,
        )
