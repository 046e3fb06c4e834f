"""Trained models on disk: weights, model cards, checksums, a per-process cache.

A model is two files side by side: ``<name>.weights.h5`` (Keras weights) and
``<name>.json`` (its card). The card records the architecture, the
normalization, the classes, how it was trained and how it scored, and the
sha256 of the weights file, which is checked before the weights are used.
A third file, ``<name>.onnx`` (the same network for ONNX Runtime, written by
``python -m nucleiseg.export CARD --onnx``), is optional; the card then also
names it and records its sha256 and the sha256 of the weights it was
converted from (:data:`ONNX_FIELDS`).

Nothing here imports an inference engine (:mod:`nucleiseg.engines`) before
:func:`load` builds networks.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from .postprocess import PostprocessSettings

MODELS_DIR = Path(os.environ.get("NUCLEISEG_MODELS", Path(__file__).resolve().parent.parent / "models"))
#: Label of the shipped models for one kind of image; each model type lists its own
#: (``ModelType.specialist_cards``) and the modules offer it as a choice of "Model".
BBBC039_LIKE = "Shipped, for BBBC039-like images (U2OS nuclei, Hoechst, 20x)"


#: The card fields of a network's ONNX file: its name (beside the card), its sha256, and the
#: sha256 of the weights it was converted from (so a file left from other weights is refused).
ONNX_FIELDS = ("onnx", "onnx_sha256", "onnx_weights_sha256")


class ModelError(ValueError):
    """A model file is missing, unreadable or does not match its card."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def card_path_for(path: Path) -> Path:
    """The card of a model given either its card or its weights file."""
    path = Path(path)
    if path.suffix == ".json":
        return path
    name = path.name
    if name.endswith(".weights.h5"):
        return path.with_name(name[: -len(".weights.h5")] + ".json")
    raise ModelError(f"{path}: expected a model card (.json) or a weights file (.weights.h5)")


def read_card(path: Path) -> dict:
    """Read and check a model card (or an ensemble card listing member cards)."""
    card_path = card_path_for(path)
    if not card_path.is_file():
        raise ModelError(f"model card not found: {card_path}")
    try:
        card = json.loads(card_path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ModelError(f"model card {card_path} is not valid JSON: {error}") from error
    if "members" in card:
        if not card["members"]:
            raise ModelError(f"ensemble card {card_path} lists no members")
        return card
    for key in ("architecture", "weights", "sha256", "normalization"):
        if key not in card:
            raise ModelError(f"model card {card_path} lacks the field {key!r}")
    return card


def member_cards(path: Path) -> list[tuple[Path, dict]]:
    """(card path, card) of every network a card stands for (one, or an ensemble's members)."""
    card_path = card_path_for(path)
    card = read_card(card_path)
    if "members" not in card:
        return [(card_path, card)]
    members = []
    for member in card["members"]:
        member_path = (card_path.parent / member).resolve()
        members.append((member_path, read_card(member_path)))
    check_members_agree(card_path, members)
    return members


#: (what, how to read it from a card) for each field an ensemble's members must share.
_MEMBERS_MUST_AGREE = (
    ("network", lambda card: card["architecture"].get("name")),
    ("classes", lambda card: card["architecture"].get("n_classes", 3)),
    ("normalization", lambda card: card["normalization"]),
)


def check_members_agree(card_path: Path, members: list[tuple[Path, dict]]) -> None:
    """Raise :class:`ModelError` unless an ensemble's networks can be averaged.

    Their probabilities are averaged pixel by pixel after one shared
    normalization and padding, so every member must be the same kind of
    network with the same classes and normalization (widths may differ).
    """
    first_path, first = members[0]
    for path, card in members[1:]:
        for what, key in _MEMBERS_MUST_AGREE:
            if key(card) != key(first):
                raise ModelError(f"ensemble {card_path}: members {first_path.name} and {path.name} differ in {what} "
                                 f"({key(first)} vs {key(card)})")


def ensemble_card(name: str, member_files: list[str], first: dict, description: str, postprocess: dict) -> dict:
    """The fields every ensemble card has, the shared ones taken from the card ``first`` of a member.

    ``member_files`` are relative to the ensemble card.
    """
    return {
        "name": name,
        "members": list(member_files),
        "ensemble": description,
        "architecture": first["architecture"],
        "normalization": first["normalization"],
        "classes": first.get("classes", []),
        "postprocess": dict(postprocess),
    }


def write_ensemble(out: Path, member_paths: list[Path], overwrite: bool = False) -> Path:
    """Write an ensemble card ``out`` for separately trained networks (e.g. runs with different seeds).

    Every member is verified (card, weights, checksum) and checked against the
    others first; nothing is written when one fails. The card starts from the
    first member's post-processing: tune it on the averaged probabilities with
    ``python -m nucleiseg.tune_postprocess``.
    """
    out = Path(out)
    if out.suffix != ".json":
        raise ModelError(f"{out}: an ensemble card must be a .json file")
    if out.exists() and not overwrite:
        raise ModelError(f"{out} exists; choose another name or allow overwriting")
    if len(member_paths) < 2:
        raise ModelError("an ensemble needs at least two member cards")
    members = []
    for member_path in member_paths:
        verified = verify(member_path)
        card_path, card = verified[0]
        # An ensemble card verifies as its members, found under other paths.
        if len(verified) != 1 or card_path.resolve() != card_path_for(member_path).resolve():
            raise ModelError(f"{member_path} is itself an ensemble; list its member cards instead")
        if card_path.resolve() == out.resolve():
            raise ModelError(f"{out} would overwrite one of its members")
        members.append((card_path.resolve(), card))
    check_members_agree(out, members)
    out.parent.mkdir(parents=True, exist_ok=True)
    files = [os.path.relpath(path, out.parent.resolve()) for path, _ in members]
    description = f"{len(members)} separately trained networks; their probabilities are averaged"
    card = ensemble_card(out.stem, files, members[0][1], description, members[0][1].get("postprocess", {}))
    card["training"] = {"members": [{"card": f, "data": c.get("training", {}).get("data"),
                                     "seed": c.get("training", {}).get("seed"),
                                     "steps": c.get("training", {}).get("steps")} for f, (_, c) in zip(files, members)]}
    return save_card(card, out)


def tuned_postprocess(path: Path) -> PostprocessSettings:
    """The post-processing settings recorded in a model's card (its ``postprocess`` field).

    For an ensemble this is the ensemble card's field, tuned on the averaged
    probabilities. A card without the field gives the defaults.
    """
    card_path = card_path_for(path)
    values = read_card(card_path).get("postprocess", {})
    try:
        return PostprocessSettings.from_dict(values)
    except (TypeError, ValueError) as error:
        raise ModelError(f"model card {card_path} has invalid post-processing settings: {error}") from error


def nucleus_diameters(path: Path):
    """The :class:`~nucleiseg.nucleus_size.DiameterRange` of a model's training nuclei (its card's
    ``nucleus_diameters``; for an ensemble the ensemble card's, else its first member's), or None
    when the card has no such record."""
    from .nucleus_size import DiameterRange

    card_path = card_path_for(path)
    card = read_card(card_path)
    record = card.get("nucleus_diameters")
    if record is None and "members" in card:
        card_path, card = member_cards(card_path)[0]
        record = card.get("nucleus_diameters")
    if record is None:
        return None
    try:
        return DiameterRange.from_dict(record)
    except ValueError as error:
        raise ModelError(f"model card {card_path} has an invalid nucleus_diameters record: {error}") from error


def require_nucleus_diameters(path: Path):
    """:func:`nucleus_diameters` of a model whose nuclei are to be matched in size; ModelError
    naming the card and the command that adds the record when it has none."""
    recorded = nucleus_diameters(path)
    if recorded is None:
        raise ModelError(f"model card {path} records no nucleus_diameters, the training nuclei's sizes that size "
                         f"matching needs: add them with python -m nucleiseg.nucleus_size {path}, or turn size "
                         "matching off")
    return recorded


def _check_file(card_path: Path, what: str, name: str, expected: str) -> None:
    path = card_path.parent / name
    if not path.is_file():
        raise ModelError(f"{what} file not found: {path} (named by {card_path})")
    actual = sha256_of(path)
    if actual != expected:
        raise ModelError(f"checksum mismatch for {path}: card {card_path.name} says {expected[:12]}…, file is {actual[:12]}…")


def verify(path: Path, onnx: bool = True) -> list[tuple[Path, dict]]:
    """Check that every file the cards name exists and matches the sha256 in its card.

    Parameters
    ----------
    path : Path
        A model card (or weights file); an ensemble card checks all its members.
    onnx : bool
        Check the ONNX files that cards name too (:data:`ONNX_FIELDS`), and that each
        was converted from the weights its card names. Off only for writing them anew.

    Returns the member cards; raises :class:`ModelError` naming the file.
    """
    members = member_cards(path)
    for card_path, card in members:
        _check_file(card_path, "weights", card["weights"], card["sha256"])
        if not onnx or not card.get("onnx"):
            continue
        missing = [key for key in ONNX_FIELDS if not card.get(key)]
        if missing:
            raise ModelError(f"model card {card_path} names an ONNX file but lacks {', '.join(map(repr, missing))}")
        _check_file(card_path, "ONNX", card["onnx"], card["onnx_sha256"])
        if card["onnx_weights_sha256"] != card["sha256"]:
            raise ModelError(f"{card_path.parent / card['onnx']} was converted from other weights than {card['weights']} "
                             f"(card {card_path.name}); write it again with python -m nucleiseg.export {card_path} --onnx")
    return members


@dataclass
class LoadedModel:
    """Networks ready for inference, with what preprocessing they need.

    Attributes
    ----------
    cards : list of dict
        The member cards, in the order of ``networks``.
    networks : list
        Keras models (``engine`` "tensorflow") or :class:`nucleiseg.engines.OnnxNetwork`
        sessions ("onnxruntime"); each has ``predict_on_batch``.
    path : Path
        The card they were loaded from.
    engine : str
        ``"tensorflow"`` or ``"onnxruntime"``.
    device : str or None
        ``"/CPU:0"`` or ``"/GPU:<n>"``; None: wherever the engine places work by default.
    """

    cards: list[dict]
    networks: list = field(repr=False)
    path: Path
    engine: str = "tensorflow"
    device: str | None = None

    @property
    def architecture(self) -> dict:
        return self.cards[0]["architecture"]

    @property
    def normalization(self) -> dict:
        return self.cards[0]["normalization"]

    @cached_property
    def trained_diameters(self):
        """:func:`require_nucleus_diameters` of the card, read once (size matching asks per image)."""
        return require_nucleus_diameters(self.path)

    @property
    def model_type(self):
        """The :class:`~nucleiseg.model_types.ModelType` of the networks."""
        from . import model_types

        return model_types.for_architecture(self.architecture)

    def placement(self):
        """Context in which the networks run: TensorFlow's device scope (ONNX Runtime's sessions are placed already)."""
        if self.engine == "tensorflow" and self.device:
            from . import devices

            return devices.scope(self.device)
        return contextlib.nullcontext()

    def predict_batch(self, batch: np.ndarray) -> np.ndarray:
        """Mean class probabilities of all member networks for a float32 batch."""
        total = None
        for network in self.networks:
            prediction = np.asarray(network.predict_on_batch(batch), dtype=np.float32)
            total = prediction if total is None else total + prediction
        return total / len(self.networks)


_CACHE: dict[tuple, LoadedModel] = {}


def load(path: Path, ensemble_size: int | None = None, engine: str = "auto", device: str = "auto",
         gpu_index: int = 0) -> LoadedModel:
    """Load (once per process and engine) the model a card or weights file names.

    Parameters
    ----------
    path : Path
        Model card, ensemble card or weights file.
    ensemble_size : int, optional
        Use the first this many networks of an ensemble (all when None).
    engine : {"auto", "tensorflow", "onnxruntime"}
        What runs the networks (:func:`nucleiseg.engines.choose`): ``"auto"`` takes ONNX
        Runtime when it is installed and every network has an ONNX file, else TensorFlow.
    device : {"auto", "cpu", "gpu"}
        Processor (:func:`nucleiseg.devices.resolve`); ``gpu_index`` picks the GPU.

    Raises
    ------
    ModelError
        A file is missing or does not match its card (the message names it).
    nucleiseg.engines.EngineNotInstalled
        The engine is not installed; the message says what to install.
    nucleiseg.devices.DeviceError
        The device cannot be had.

    Notes
    -----
    The cache key holds the resolved card path, the files' checksums, the engine and
    the device, so a replaced file is loaded again while repeated image sets reuse
    the model.
    """
    from . import devices, engines

    members = verify(path)
    if ensemble_size is not None:
        if not 1 <= ensemble_size <= len(members):
            raise ModelError(f"{path}: ensemble size {ensemble_size} asked for, the model has {len(members)} networks")
        members = members[:ensemble_size]
    chosen = engines.choose(engine, members, card_path_for(path))
    where = devices.resolve(device, gpu_index, engine=chosen)
    # Keyed by the card, so naming the card or its weights file gives the same object.
    checksums = tuple((card["sha256"], card.get("onnx_sha256")) for _, card in members)
    key = (str(card_path_for(path).resolve()), checksums, chosen, where)
    if key not in _CACHE:
        networks = engines.load_networks(chosen, members, where, fallback=device == "auto")
        placed = getattr(networks[0], "device", where) if chosen == engines.ONNXRUNTIME else where
        _CACHE[key] = LoadedModel([card for _, card in members], networks, Path(path), chosen, placed)
    return _CACHE[key]


def clear_cache() -> None:
    _CACHE.clear()


def write_card(card: dict, weights: Path) -> Path:
    """Write ``card`` beside ``weights`` with the weights' sha256 filled in.

    ONNX fields copied from a card of other weights are left out: that file is not
    these weights' network.
    """
    weights = Path(weights)
    card = dict(card, weights=weights.name, sha256=sha256_of(weights))
    if card.get("onnx_weights_sha256") != card["sha256"]:
        card = {key: value for key, value in card.items() if key not in ONNX_FIELDS}
    return save_card(card, card_path_for(weights))


def save_card(card: dict, path: Path) -> Path:
    """Write a card's JSON whole or not at all (a temporary file, then a rename)."""
    path = Path(path)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(card, indent=2) + "\n")
    tmp.replace(path)
    return path
