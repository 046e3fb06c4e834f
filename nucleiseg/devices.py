"""Which processor runs the networks: automatic, CPU, or a chosen GPU, for either engine.

Devices are named as TensorFlow names them (``"/CPU:0"``, ``"/GPU:<n>"``) whichever
engine runs (:mod:`nucleiseg.engines`): TensorFlow places work inside
:func:`scope`, ONNX Runtime gives GPU ``n`` to its CUDA provider when a session is made.

TensorFlow by default reserves almost all memory of every GPU it sees when it
first touches one; here memory growth is switched on first, so a network takes
only what it needs and other programs (or other CellProfiler workers) can
share the GPU.

Policy when a GPU is asked for but none can be used: ``"auto"`` quietly runs on
the CPU, while an explicit ``"gpu"`` raises :class:`DeviceError`. Asking for a
GPU is a deliberate choice, and quietly running on the CPU instead, often
dozens of times slower, would be a surprise.
"""

from __future__ import annotations

import contextlib
import logging

LOGGER = logging.getLogger(__name__)

KINDS = ("auto", "cpu", "gpu")

_memory_growth_set = False


class DeviceError(RuntimeError):
    """A device was asked for that this machine or this installation cannot provide."""


class GpuIndexError(DeviceError):
    """GPUs are there, but none with the index asked for."""


def _tensorflow():
    """TensorFlow when Keras runs on it, else None (other backends place work themselves)."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    return tf


def gpu_count() -> int:
    """Number of GPUs TensorFlow can see (0 on a CPU-only installation or machine)."""
    tf = _tensorflow()
    if tf is None:
        return 0
    return len(tf.config.list_physical_devices("GPU"))


def enable_memory_growth() -> None:
    """Let TensorFlow allocate GPU memory as needed instead of grabbing it all.

    Works only before TensorFlow has initialised its GPUs; afterwards the
    setting can no longer change, which is harmless, so that case is only logged.
    Only the first call in a process does anything.
    """
    global _memory_growth_set
    tf = _tensorflow()
    if tf is None or _memory_growth_set:
        return
    _memory_growth_set = True
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError as error:  # GPUs already initialised in this process
            LOGGER.debug("memory growth unchanged for %s: %s", gpu.name, error)


def resolve(kind: str = "auto", index: int = 0, engine: str = "tensorflow") -> str:
    """Device name (``"/CPU:0"`` or ``"/GPU:<n>"``) for a device choice.

    Parameters
    ----------
    kind : {"auto", "cpu", "gpu"}
        ``"auto"``: the first GPU if there is one, else the CPU.
    index : int
        Which GPU, counted from 0, when ``kind`` is ``"gpu"``.
    engine : {"tensorflow", "onnxruntime"}
        The engine that will run the networks; ONNX Runtime uses a GPU through its CUDA
        provider, whose GPU index is checked only when a session starts.

    Raises
    ------
    DeviceError
        ``kind`` is ``"gpu"`` and no GPU with that index is visible
        (:class:`GpuIndexError` when GPUs are, but not that one).
    ValueError
        ``kind`` is not one of :data:`KINDS`.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown device {kind!r}; expected one of {KINDS}")
    if kind == "cpu":
        return "/CPU:0"
    if engine == "onnxruntime":
        return _resolve_onnxruntime(kind, index)
    count = gpu_count()
    if kind == "auto":
        return "/GPU:0" if count else "/CPU:0"
    if count == 0:
        raise DeviceError(
            "a GPU was asked for, but TensorFlow sees none on this machine (a CPU-only "
            "TensorFlow build, no GPU, or no working driver); choose 'Automatic' or 'CPU'"
        )
    if not 0 <= index < count:
        raise GpuIndexError(f"GPU {index} was asked for, but TensorFlow sees {count} GPU(s), numbered 0 to {count - 1}")
    return f"/GPU:{index}"


def _resolve_onnxruntime(kind: str, index: int) -> str:
    """:func:`resolve` for ONNX Runtime: a GPU only through its CUDA provider, whose GPU index a session checks."""
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        return f"/GPU:{index if kind == 'gpu' else 0}"
    if kind == "auto":
        return "/CPU:0"
    raise DeviceError(
        "a GPU was asked for, but this ONNX Runtime has no CUDA provider (the CPU package 'onnxruntime' is "
        "installed: install 'onnxruntime-gpu' in its place, with CUDA and cuDNN); choose 'Automatic' or 'CPU'"
    )


def scope(device: str):
    """Context manager placing TensorFlow work inside it on ``device`` (no-op for other backends)."""
    tf = _tensorflow()
    if tf is None:
        return contextlib.nullcontext()
    return tf.device(device)
