"""The network pipelines: one kind per model type with a CellProfiler module, one per shipped specialist model.

For every name of :func:`nucleiseg.model_types.names` that has a module in
:data:`~nucleiseg_cellprofiler.names.NETWORK_MODULES`, the kind of that name
runs the module with the type's general model (shipped with its ``-segment``
variant too), and each of the type's ``specialist_cards`` gives a kind named
after the card's stem (e.g. ``unet-bbbc039``) that chooses that model.
"""

from __future__ import annotations

import json
from pathlib import Path

from nucleiseg import cards, model_types

from ..names import IMAGE, MODEL_CUSTOM, NETWORK_MODULES, NUCLEI
from .kinds import SEGMENT, BuildOptions, PipelineKind, register
from .modules import module, set_setting


def network_processing(model_type: str, options: BuildOptions, model_choice: str | None = None) -> list:
    """The network module with a shipped model and the post-processing tuned for it on train.

    Parameters
    ----------
    model_type : str
        A key of :data:`~nucleiseg_cellprofiler.names.NETWORK_MODULES`.
    options : BuildOptions
        ``augment`` switches on flips and rotations; ``ensemble`` runs only the
        first networks of an ensemble (default: all), for modules with an
        *Ensemble size* setting.
    model_choice : str, optional
        One of the module's shipped specialist models (default: the general model);
        ``options.model_card`` (a card of one's own) takes the place of either.

    The module reads the post-processing from the model card's ``postprocess``
    field (written by ``python -m nucleiseg.tune_postprocess``); the same values
    are also written into its own settings, so they are what a user sees on
    switching to their own post-processing.

    Raises
    ------
    ValueError
        When ``options.ensemble`` does not fit the model or the module runs no ensembles.
    """
    m = module(NETWORK_MODULES[model_type], x_name=IMAGE, y_name=NUCLEI)
    if options.model_card:
        set_setting(m, "model_choice", MODEL_CUSTOM)
        set_setting(m, "model_file", str(Path(options.model_card).resolve()))
    elif model_choice:
        set_setting(m, "model_choice", model_choice)
    card_path = m.model_path()
    card = json.loads(card_path.read_text())
    set_setting(m, "use_model_postprocess", True)
    set_setting(m, "augment", options.augment)
    # A specialist's training images are of one kind, so their range of nucleus sizes is too narrow
    # to say which images lie outside what the network handles: it segments at the image's own size.
    specialist = bool(model_choice) and not options.model_card
    set_setting(m, "match_size", not specialist)
    for key, value in cards.tuned_postprocess(card_path).to_dict().items():
        # Fields without a module setting (relative_min_size) are read from the card only.
        if hasattr(m, key):
            set_setting(m, key, value)
    ensemble = options.ensemble
    if hasattr(m, "ensemble"):
        networks = len(card.get("members", [None]))
        if ensemble is not None and not 1 <= ensemble <= networks:
            raise ValueError(f"ensemble size {ensemble}: {card_path} has {networks} network(s)")
        set_setting(m, "ensemble", ensemble or networks)
    elif ensemble is not None:
        raise ValueError(f"ensemble size: {m.module_name} ({model_type} pipelines) has no 'Ensemble size' setting")
    return [m]


def _register_network_kinds() -> None:
    for name in model_types.names():
        if name not in NETWORK_MODULES:
            continue  # a model type without a CellProfiler module cannot be in a pipeline
        register(PipelineKind(name, lambda options, name=name: network_processing(name, options),
                              model_type=name, ship=(None, SEGMENT)))
        for label, card in model_types.get(name).specialist_cards.items():
            register(PipelineKind(Path(card).stem,
                                  lambda options, name=name, label=label: network_processing(name, options, label),
                                  model_type=name, model_choice=label))


_register_network_kinds()
