"""The registry of pipeline kinds: what the generator can write, and what ships in ``pipelines/``.

A pipeline kind (:class:`PipelineKind`) names the modules that turn the DNA
image into Nuclei objects; the generator puts them between the shared input and
output modules. Each kind is registered with one :func:`register` call in the
file that builds its modules (:mod:`.classical`, :mod:`.network`).

A pipeline name is a kind's name followed by the suffixes of any
:data:`VARIANTS` in their order, e.g. ``deepcell-bbbc039-tta-segment``:

``-tta``
    Network kinds only: the network averaged over the 8 flips and rotations.
``-segment``
    For images without ground truth: every image of the input folder is read
    (but ``masks/`` and ``labels/``), and the nuclei are measured instead of
    scored.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Mapping


@dataclass(frozen=True)
class BuildOptions:
    """What a pipeline is built with, beyond its kind.

    Attributes
    ----------
    params : mapping, optional
        Settings that replace a classical kind's :attr:`PipelineKind.params`.
    ensemble : int, optional
        Run only the first networks of an ensemble model (network kinds).
    augment : bool
        Average the network over flips and rotations (variant ``-tta``).
    ground_truth : bool
        Load and score ground truth; False measures the nuclei instead (variant ``-segment``).
    model_card : str, optional
        Network kinds: the module's *Custom model file* (a model card of one's own, e.g. from
        ``python -m nucleiseg.finetune``) instead of a shipped model.
    """

    params: Mapping | None = None
    ensemble: int | None = None
    augment: bool = False
    ground_truth: bool = True
    model_card: str | None = None


@dataclass(frozen=True)
class Variant:
    """A pipeline name suffix and the build options it sets."""

    suffix: str
    options: Mapping
    networks_only: bool = False


TTA = Variant("-tta", {"augment": True}, networks_only=True)
SEGMENT = Variant("-segment", {"ground_truth": False})
#: Variants in the order their suffixes follow a kind's name.
VARIANTS = (TTA, SEGMENT)


@dataclass(frozen=True)
class PipelineKind:
    """One kind of pipeline.

    Attributes
    ----------
    name : str
        The pipeline's name (and its file's stem, ``pipelines/<name>.cppipe``).
    processing : callable
        ``processing(options: BuildOptions) -> list`` of CellProfiler modules
        making the ``Nuclei`` objects from the ``DNA`` image.
    model_type : str, optional
        The :mod:`nucleiseg.model_types` name of a network kind; None for classical ones.
    model_choice : str, optional
        The network module's *Model* choice (a specialist label); None for the general model.
    params : mapping, optional
        A classical kind's tunable settings with their shipped values.
    ship : tuple of (Variant or None)
        What is written into ``pipelines/`` by default: None for the kind
        itself, a variant for that variant of it.
    """

    name: str
    processing: Callable[[BuildOptions], list]
    model_type: str | None = None
    model_choice: str | None = None
    params: Mapping | None = None
    ship: tuple[Variant | None, ...] = (None,)

    def applies(self, variant: Variant) -> bool:
        """Whether ``variant`` can be built for this kind."""
        return not variant.networks_only or self.model_type is not None

    @property
    def shipped(self) -> list[str]:
        """Names of this kind's pipelines in ``pipelines/``."""
        return [self.name + (variant.suffix if variant else "") for variant in self.ship]


_KINDS: dict[str, PipelineKind] = {}


def register(kind: PipelineKind) -> PipelineKind:
    """Add ``kind`` to the registry.

    Raises
    ------
    ValueError
        When the name is taken or ends in a variant's suffix (it could not be told
        from that variant of another kind), or a shipped variant does not apply.
    """
    if kind.name in _KINDS:
        raise ValueError(f"a pipeline kind named {kind.name!r} is already registered")
    if any(kind.name.endswith(variant.suffix) for variant in VARIANTS):
        raise ValueError(f"pipeline kind {kind.name!r} ends in a variant's suffix")
    for variant in kind.ship:
        if variant is not None and not kind.applies(variant):
            raise ValueError(f"{variant.suffix} applies to network pipelines, not {kind.name!r}")
    _KINDS[kind.name] = kind
    return kind


def kinds() -> list[PipelineKind]:
    """Every registered kind, in registration order."""
    return list(_KINDS.values())


def get(name: str) -> PipelineKind:
    """The kind called ``name`` (no variant suffixes); ValueError naming the known ones otherwise."""
    try:
        return _KINDS[name]
    except KeyError:
        raise ValueError(f"unknown pipeline kind {name!r}; expected one of {', '.join(_KINDS)}") from None


def resolve(name: str) -> tuple[PipelineKind, BuildOptions]:
    """The kind of pipeline ``name`` and the options its variant suffixes set.

    Raises
    ------
    ValueError
        For an unknown kind, or a variant that does not apply to it.
    """
    base, variants = name, []
    for variant in reversed(VARIANTS):
        if base.endswith(variant.suffix):
            base = base[: -len(variant.suffix)]
            variants.append(variant)
    kind = get(base)
    options = BuildOptions()
    for variant in variants:
        if not kind.applies(variant):
            raise ValueError(f"{name}: {variant.suffix} applies to network pipelines, not {base!r}")
        options = replace(options, **variant.options)
    return kind, options


def shipped() -> list[str]:
    """Names of the pipelines shipped in ``pipelines/``."""
    return [name for kind in _KINDS.values() for name in kind.shipped]


def buildable() -> list[str]:
    """Every pipeline name the generator accepts: each kind with each applicable combination of variants."""
    names = []
    for kind in _KINDS.values():
        endings = [""]
        for variant in VARIANTS:
            if kind.applies(variant):
                endings += [ending + variant.suffix for ending in endings]
        names += [kind.name + ending for ending in endings]
    return names
