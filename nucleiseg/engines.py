"""The engines that run a model's networks: Keras on TensorFlow, or ONNX Runtime.

* ``"tensorflow"``: Keras networks built from the card's architecture and weights
  (today's path; Keras runs on TensorFlow, or on the backend ``KERAS_BACKEND`` names).
* ``"onnxruntime"``: the ONNX file each member card names (its ``onnx`` field, written
  by ``python -m nucleiseg.export CARD --onnx``) in an ONNX Runtime session. It needs
  neither TensorFlow nor Keras, so it runs in a CellProfiler environment without them.
* ``"auto"``: ONNX Runtime when it is installed and every network of the card has an
  ONNX file, otherwise TensorFlow.

Both kinds of network are called the same way, ``network.predict_on_batch(batch)``,
so :class:`nucleiseg.cards.LoadedModel` and tiling do not know which one runs. Nothing
here imports an engine until a network is loaded.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import numpy as np

from . import devices
from .cards import ModelError

AUTO = "auto"
TENSORFLOW = "tensorflow"
ONNXRUNTIME = "onnxruntime"
ENGINES = (AUTO, TENSORFLOW, ONNXRUNTIME)
#: How each engine is called in messages.
LABELS = {TENSORFLOW: "TensorFlow", ONNXRUNTIME: "ONNX Runtime"}
#: The package each engine is imported as (Keras for "tensorflow": it brings its backend).
_PACKAGES = {TENSORFLOW: "keras", ONNXRUNTIME: "onnxruntime"}
#: What to install for each engine (setup.cfg's extras; exact versions in requirements.lock).
INSTALL = {
    TENSORFLOW: "pip install 'nucleiseg[tensorflow]' (Keras and TensorFlow)",
    ONNXRUNTIME: "pip install 'nucleiseg[onnx]' (ONNX Runtime; for a GPU, onnxruntime-gpu instead)",
}
CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"


class EngineNotInstalled(ImportError):
    """The engine asked for cannot be imported in this Python; the message says what to install."""


def check_name(engine: str) -> str:
    """``engine`` if it is one of :data:`ENGINES`, else ValueError naming them."""
    if engine not in ENGINES:
        raise ValueError(f"unknown inference engine {engine!r}; expected one of {', '.join(ENGINES)}")
    return engine


def installed(engine: str) -> bool:
    """Whether ``engine`` ("tensorflow" or "onnxruntime") can be imported here, without importing it."""
    try:
        return importlib.util.find_spec(_PACKAGES[check_name(engine)]) is not None
    except (ImportError, ValueError):  # a package blocked by an import hook, or a broken one
        return False


def require(engine: str) -> None:
    """Raise :class:`EngineNotInstalled`, saying what to install, unless ``engine`` is importable."""
    if not installed(engine):
        raise EngineNotInstalled(f"the {LABELS[engine]} inference engine is not installed in this Python "
                                 f"({sys.executable}); install it with {INSTALL[engine]}, or choose the other engine")


def has_onnx(members: list[tuple[Path, dict]]) -> bool:
    """Whether every member card names an ONNX file."""
    return all(card.get("onnx") for _, card in members)


def choose(engine: str, members: list[tuple[Path, dict]], path: Path) -> str:
    """The engine that runs the networks of ``members`` (the member cards of the model card ``path``).

    Parameters
    ----------
    engine : {"auto", "tensorflow", "onnxruntime"}
        What was asked for.
    members : list of (Path, dict)
        The member cards that will run (:func:`nucleiseg.cards.verify`).
    path : Path
        The model card, for messages.

    Returns
    -------
    str
        ``"tensorflow"`` or ``"onnxruntime"``.

    Raises
    ------
    EngineNotInstalled
        The engine is missing (for ``"auto"``: no engine that can run this card is).
    ModelError
        ONNX Runtime was asked for and a member card has no ONNX file.
    """
    if check_name(engine) == AUTO:
        if has_onnx(members) and installed(ONNXRUNTIME):
            return ONNXRUNTIME
        if installed(TENSORFLOW):
            return TENSORFLOW
        if installed(ONNXRUNTIME):
            raise EngineNotInstalled(f"{path} has no ONNX file for every network, so it needs the TensorFlow engine, "
                                     f"which is not installed: install it with {INSTALL[TENSORFLOW]}, or write the "
                                     f"ONNX files with python -m nucleiseg.export {path} --onnx (where TensorFlow is)")
        raise EngineNotInstalled(f"no inference engine is installed in this Python ({sys.executable}); install "
                                 f"ONNX Runtime with {INSTALL[ONNXRUNTIME]}, or TensorFlow with {INSTALL[TENSORFLOW]}")
    require(engine)
    if engine == ONNXRUNTIME:
        missing = [card_path.name for card_path, card in members if not card.get("onnx")]
        if missing:
            raise ModelError(f"{path}: {', '.join(missing)} names no ONNX file; write it with "
                             f"python -m nucleiseg.export {path} --onnx, or choose the TensorFlow engine")
    return engine


def load_networks(engine: str, members: list[tuple[Path, dict]], device: str, fallback: bool = False) -> list:
    """The networks of verified member cards for ``engine`` ("tensorflow" or "onnxruntime"), placed on ``device``.

    ``device`` is a name from :func:`nucleiseg.devices.resolve` (``"/CPU:0"``, ``"/GPU:<n>"``);
    with ``fallback`` (the GPU was chosen automatically) ONNX Runtime may run on the CPU
    when its CUDA provider cannot start.
    """
    if engine == ONNXRUNTIME:
        return [OnnxNetwork(card_path.parent / card["onnx"], device, fallback=fallback) for card_path, card in members]
    devices.enable_memory_growth()
    with devices.scope(device):
        return [keras_network(card_path, card) for card_path, card in members]


def keras_network(card_path: Path, card: dict):
    """The Keras network of one verified member card, weights loaded (ModelError naming the file otherwise)."""
    from . import model_types

    network = model_types.build(card["architecture"])
    # XLA would recompile for every new image shape; plain graphs are faster here.
    network.jit_compile = False
    weights = card_path.parent / card["weights"]
    try:
        network.load_weights(weights)
    except Exception as error:  # h5py/keras raise many types
        raise ModelError(f"cannot load weights {weights}: {error}") from error
    return network


def cpu_threads() -> int:
    """CPUs this process may run on (its affinity where the system tells, else all)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def session_options(threads: int | None = None):
    """ONNX Runtime session options for the networks: every graph optimization, sequential, ``threads`` threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    # Constant folding, convolution fusions and the CPU's blocked memory layout: done once per session.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # The networks are one chain of layers: running operators side by side only splits the threads.
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.inter_op_num_threads = 1
    options.intra_op_num_threads = int(threads or cpu_threads())
    # Busy-waiting threads steal the CPU from other CellProfiler workers and from each other under load.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only
    return options


class OnnxNetwork:
    """One network as an ONNX Runtime session, called like a Keras model.

    Parameters
    ----------
    path : Path
        The ONNX file (its checksum already verified against its card).
    device : str
        ``"/CPU:0"``, or ``"/GPU:<n>"`` for ONNX Runtime's CUDA provider on GPU ``n``.
    fallback : bool
        Run on the CPU when the CUDA provider cannot start (else :class:`~nucleiseg.devices.DeviceError`).
    threads : int, optional
        CPU threads (default: :func:`cpu_threads`).

    Attributes
    ----------
    device : str
        Where it runs: ``"/CPU:0"`` when a GPU was chosen automatically but CUDA could not start.
    input_shape, output_shape : tuple
        As Keras gives them: None for the sizes that vary (batch, height, width).
    """

    def __init__(self, path: Path, device: str = "/CPU:0", fallback: bool = False, threads: int | None = None):
        import onnxruntime as ort

        self.path = Path(path)
        gpu = device.upper().startswith("/GPU:")
        providers = [CPU_PROVIDER]
        if gpu:
            providers.insert(0, (CUDA_PROVIDER, {"device_id": int(device.split(":")[1])}))
        try:
            self.session = ort.InferenceSession(str(self.path), session_options(threads), providers=providers)
        except Exception as error:  # onnxruntime raises its own exception types
            raise ModelError(f"cannot load ONNX file {self.path}: {error}") from error
        on_gpu = self.session.get_providers()[0] == CUDA_PROVIDER
        if gpu and not on_gpu and not fallback:
            raise devices.DeviceError(f"ONNX Runtime could not start its CUDA provider on {device} for {self.path.name} "
                                      "(no such GPU, or no working CUDA/cuDNN); choose 'Automatic' or 'CPU'")
        self.device = device if on_gpu else "/CPU:0"
        (inputs,), outputs = self.session.get_inputs(), self.session.get_outputs()
        self.input_name = inputs.name
        self.input_shape = tuple(size if isinstance(size, int) else None for size in inputs.shape)
        self.output_shape = tuple(size if isinstance(size, int) else None for size in outputs[0].shape)

    def predict_on_batch(self, batch: np.ndarray) -> np.ndarray:
        """Class probabilities of a ``(B, H, W, channels)`` batch."""
        return self.session.run(None, {self.input_name: np.ascontiguousarray(batch, dtype=np.float32)})[0]

    def __repr__(self) -> str:
        return f"OnnxNetwork({self.path.name!r}, device={self.device!r})"
