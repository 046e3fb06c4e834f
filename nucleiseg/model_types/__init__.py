"""The registry of model types: the one place a network's name is looked up.

A model type (:class:`~nucleiseg.model_types.base.ModelType`) is one module of
this package plus its line in ``_BUILT_IN``; :func:`register` adds others at run
time (e.g. a test's toy network). Nothing here imports Keras.
"""

from __future__ import annotations

from .base import DENSE, ModelType
from .deepcell import MODEL_TYPE as _DEEPCELL
from .unet import MODEL_TYPE as _UNET

__all__ = ["DENSE", "ModelType", "build", "custom_objects", "for_architecture", "get", "names", "register",
           "shipped_cards", "unregister"]

_BUILT_IN = (_UNET, _DEEPCELL)
_REGISTRY: dict[str, ModelType] = {model_type.name: model_type for model_type in _BUILT_IN}


def register(model_type: ModelType) -> ModelType:
    """Add a model type under its ``name``; refuses to replace another one of that name."""
    if not model_type.name:
        raise ValueError("a model type needs a name")
    known = _REGISTRY.get(model_type.name)
    if known is not None and known is not model_type:
        raise ValueError(f"a model type named {model_type.name!r} is already registered")
    _REGISTRY[model_type.name] = model_type
    return model_type


def unregister(name: str) -> None:
    """Remove a model type added with :func:`register` (built-in ones stay)."""
    if any(model_type.name == name for model_type in _BUILT_IN):
        raise ValueError(f"{name!r} is a built-in model type")
    _REGISTRY.pop(name, None)


def names() -> list[str]:
    """Names of the registered model types, built-in ones first."""
    return list(_REGISTRY)


def get(name: str) -> ModelType:
    """The model type called ``name``; ValueError naming the known ones otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model type {name!r}; expected one of {', '.join(_REGISTRY)}") from None


def shipped_cards() -> list:
    """Cards of the shipped models of every registered type: its general model, then its specialists."""
    cards = []
    for model_type in _REGISTRY.values():
        cards += [card for card in (model_type.default_card, *model_type.specialist_cards.values()) if card]
    return cards


def for_architecture(spec: dict) -> ModelType:
    """The model type of a card's architecture record."""
    return get(spec.get("name"))


def build(spec: dict):
    """A Keras model for a card's architecture record (whole-image form)."""
    return for_architecture(spec).build(spec)


def custom_objects() -> dict:
    """Custom Keras layers of every registered type, for loading saved training checkpoints."""
    objects = {}
    for model_type in _REGISTRY.values():
        objects.update(model_type.custom_objects())
    return objects
