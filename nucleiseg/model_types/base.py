"""What a kind of network provides to training, inference, cards, pipelines and reports."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import targets
from ..postprocess import PostprocessSettings, probabilities_to_labels
from ..tiling import predict_tiled

DENSE = "dense"


class ModelType:
    """One kind of network: how to build it, feed it, train it and read its output.

    Subclasses set the class attributes and implement :meth:`build`; everything
    else has defaults for a fully convolutional network predicting the three
    classes of :mod:`nucleiseg.targets`. Nothing here imports Keras until a
    network is built, so modules can list model types cheaply.

    Attributes
    ----------
    name : str
        The key in model cards (``architecture.name``) and on the command line.
    classes : tuple of str
        Output channels, in order (``classes`` field of cards).
    margin : int
        Context pixels the network consumes on every side of its output.
    multiple : int
        The network's input (minus margins) must be a multiple of this.
    inference_modes : tuple of str
        Ways :meth:`predict` can run; the first is the default.
    default_optimizer, default_learning_rate
        Training defaults of this network's recipe.
    default_card : Path or None
        The shipped general model of this type.
    specialist_cards : dict
        Further shipped models, ``{label: card}`` (modules offer each label).
    published : dict
        The reference paper's figures for this network (``f1`` at IoU 0.5..0.95,
        ``error_070``), shown beside ours in reports; empty when none.
    postprocess_defaults : dict
        Post-processing settings (:class:`~nucleiseg.postprocess.PostprocessSettings`
        fields) that differ from the shared defaults for this type; training
        validates with them unless told otherwise.
    """

    name: str = ""
    classes: tuple[str, ...] = targets.CLASS_NAMES
    margin: int = 0
    multiple: int = 1
    inference_modes: tuple[str, ...] = (DENSE,)
    default_optimizer: str = "adam"
    default_learning_rate: float = 1e-3
    default_card: Path | None = None
    specialist_cards: dict = {}
    published: dict = {}
    targets_definition: str = "nucleiseg.targets.three_class_targets"
    postprocess_defaults: dict = {}

    # ---- building ---------------------------------------------------------------------------

    def architecture(self, width: int | None = None) -> dict:
        """The architecture record a model card stores for a new network of this type."""
        return {"name": self.name, "n_classes": len(self.classes)}

    def build(self, spec: dict):
        """A Keras model for the architecture record ``spec``, in its whole-image form."""
        raise NotImplementedError

    def custom_objects(self) -> dict:
        """Custom Keras layers, for loading full saved models (training checkpoints)."""
        return {}

    # ---- training ---------------------------------------------------------------------------

    def training_targets(self, labels: np.ndarray, boundary_width: int = 1) -> np.ndarray:
        """Per-pixel class indices (uint8) for an instance label image."""
        return targets.three_class_targets(labels, boundary_width)

    def class_weights(self, boundary_weight: float = 10.0) -> tuple[float, ...]:
        """Loss weight per class; the boundary is rare and decides splits, so it weighs more."""
        return (1.0, 1.0, float(boundary_weight))

    # ---- inference --------------------------------------------------------------------------

    def check_mode(self, mode: str | None) -> str:
        """``mode`` (default: the first of :attr:`inference_modes`), or ValueError naming the choices."""
        mode = mode or self.inference_modes[0]
        if mode not in self.inference_modes:
            raise ValueError(f"{self.name}: unknown inference mode {mode!r}; expected one of {', '.join(self.inference_modes)}")
        return mode

    def predict(self, model, normalized: np.ndarray, tile: int = 1024, overlap: int = 64,
                batch_size: int = 1, mode: str | None = None) -> np.ndarray:
        """``(H, W, len(classes))`` probabilities of a normalized 2-D image, averaged over the model's networks.

        The default runs the whole-image networks through overlapping tiles
        (:func:`nucleiseg.tiling.predict_tiled`) with this type's margin and multiple.
        """
        self.check_mode(mode)
        return predict_tiled(model.predict_batch, normalized, n_classes=len(self.classes), tile=tile,
                             overlap=overlap, margin=self.margin, multiple=self.multiple, batch_size=batch_size)

    def to_labels(self, probabilities: np.ndarray, settings: PostprocessSettings | None = None) -> np.ndarray:
        """Nucleus instance labels from this type's probabilities."""
        return probabilities_to_labels(probabilities, settings)
