"""Which model each network module of a ``.cppipe`` file runs, and how that model was trained.

The report names them so that a reader comparing pipelines knows when two networks were
trained with different recipes (Caicedo et al. compared theirs with identical pre- and
post-processing). Read from the pipeline's text, without CellProfiler.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nucleiseg import cards, model_types
from nucleiseg.augment import describe_record
from nucleiseg_cellprofiler.names import MODEL_CUSTOM, MODEL_SHIPPED, NETWORK_MODULES

_MODEL_SETTING = "Model:"
_CARD_SETTING = "Model card file:"


@dataclass(frozen=True)
class NetworkModel:
    """One network module of a pipeline and the model card its settings select."""

    module: str
    model_type: str
    card: Path


def network_models(pipeline: Path) -> list[NetworkModel]:
    """The network modules of ``pipeline`` (a ``.cppipe`` file) with the card each selects, in order."""
    types_by_module = {module: name for name, module in NETWORK_MODULES.items()}
    found, current, choice, custom = [], None, None, ""

    def close():
        if current is None:
            return
        model_type = model_types.get(current[1])
        if choice == MODEL_CUSTOM:
            card = Path(custom).expanduser()
        elif choice in model_type.specialist_cards:
            card = Path(model_type.specialist_cards[choice])
        else:  # MODEL_SHIPPED, or a pipeline saved before the setting existed
            card = Path(model_type.default_card)
        found.append(NetworkModel(current[0], current[1], card))

    for line in Path(pipeline).read_text(encoding="utf-8", errors="replace").splitlines():
        if line and not line[0].isspace() and ":[module_num:" in line:
            close()
            name = line.split(":[", 1)[0]
            current = (name, types_by_module[name]) if name in types_by_module else None
            choice, custom = MODEL_SHIPPED, ""
        elif current is not None and line.strip().startswith(_MODEL_SETTING):
            choice = line.strip()[len(_MODEL_SETTING):]
        elif current is not None and line.strip().startswith(_CARD_SETTING):
            custom = line.strip()[len(_CARD_SETTING):]
    close()
    return found


def recipe(card: Path) -> dict:
    """What a card says of its training: ``card``, ``networks``, ``split``, ``images``, ``augmentation`` (text).

    A card that cannot be read gives ``{"card": ..., "error": message}`` instead of raising:
    the report says so rather than failing after the run.
    """
    try:
        top = cards.read_card(card)
        members = cards.member_cards(card)
    except (OSError, ValueError, cards.ModelError) as error:
        return {"card": str(card), "error": str(error)}
    training = top.get("training") or {}
    member_training = members[0][1].get("training") or {}
    augmentation = training.get("augmentation") or member_training.get("augmentation") or {}
    return {
        "card": str(card),
        "networks": len(members),
        "split": training.get("split") or member_training.get("split") or "not recorded",
        "images": training.get("images") or member_training.get("images"),
        "augmentation": (describe_record(augmentation) or "none") if augmentation else "not recorded",
    }
