"""Training throughput of one network on each Keras backend of this machine, side by side.

``python -m benchmark speed training [--backends tensorflow,torch,torch-bf16,jax] [--network unet --width 16
--crop 256 --batch-size 4 --steps 20 --warmup 3] [--threads N] [--robust] [--install] [--json]``

Each backend runs in a process of its own, in its own environment (TensorFlow: ``.venv``;
PyTorch: ``.venv-torch``; JAX: ``.venv-jax``, see the Makefile), with ``KERAS_BACKEND`` set.
A missing environment is reported as a row saying which ``make`` target builds it
(``--install`` runs that target first). The work timed is the project's training step:
the network from :func:`nucleiseg.training.build_network` (compiled by
:func:`~nucleiseg.training.compile_for_training`), one ``train_on_batch`` per batch of
:func:`nucleiseg.training.make_batch` on synthetic images (:mod:`nucleiseg.synthetic`).
Making a batch (cropping, augmentation, targets, on the CPU in NumPy and SciPy) is timed
apart from the optimizer step.

Per backend: cold is the first step (graph building, tracing or compiling included); warm is
the median of the ``--steps`` steps after ``--warmup`` steps (the cold one among them),
as in :mod:`benchmark.speed.timing`; steps/s and crops/s come from the warm step.

Variants (``--backends``):

* ``tensorflow``: the project's step (a ``tf.function`` graph; ``compile_for_training`` turns XLA off);
* ``tensorflow-bf16``: the same with Keras' ``mixed_bfloat16`` policy (bfloat16 compute, float32 weights),
  what ``TrainConfig.mixed_bfloat16`` does;
* ``tensorflow-xla``: the project's network with ``jit_compile`` switched back on;
* ``torch``: eager PyTorch (Keras' torch trainer does not compile unless asked);
* ``torch-bf16``: PyTorch with Keras' ``mixed_bfloat16`` policy;
* ``torch-autocast``: PyTorch float32 layers, each step inside ``torch.autocast("cpu", torch.bfloat16)``;
* ``torch-compile``: ``jit_compile=True``, which Keras' torch trainer turns into ``torch.compile`` of the step;
* ``jax``: the project's step as ``compile_for_training`` leaves it, ``jit_compile=False``, which on JAX
  means the step runs op by op without ``jax.jit``;
* ``jax-jit``: the same network with ``jit_compile=True`` (the whole step one XLA program).

Threads: every backend process may use ``--threads`` CPUs (default: all this process may
use). The process is pinned to that many CPUs (every backend sizes its pools from the CPU
affinity), ``OMP_NUM_THREADS`` is set, and then: TensorFlow intra-op threads = N, inter-op
threads = 1; ``torch.set_num_threads(N)``, ``torch.set_num_interop_threads(1)``; JAX (XLA's
CPU client) has no thread setting of its own and uses the pinned CPUs. Other environment
variables pass through to the workers (e.g. ``OMP_WAIT_POLICY=PASSIVE``, which helps PyTorch's
OpenMP threads on a machine busy with other work).

Exit status: 0 when every backend was measured, 1 when one was not (its row says why), 2 for
bad options.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import BenchmarkError
from .timing import Timing

REPO = Path(__file__).resolve().parents[2]

#: Keras backend -> (environment folder under the repository, the make target that builds it).
ENVIRONMENTS = {
    "tensorflow": (".venv", "venv"),
    "torch": (".venv-torch", ".venv-torch/.installed"),
    "jax": (".venv-jax", ".venv-jax/.installed"),
}

#: The worker prints its result on one stdout line after this; libraries may print other lines.
RESULT_MARK = "nucleiseg-speed-training-result "

DEFAULT_BACKENDS = "tensorflow,torch,torch-bf16,jax"


@dataclass(frozen=True)
class Variant:
    """One way of running the training step.

    Attributes
    ----------
    name : str
        The name in ``--backends`` and in the table.
    backend : str
        ``KERAS_BACKEND`` (and so the environment) it runs in.
    policy : str
        Keras dtype policy set before the network is built.
    autocast : bool
        Run each step inside ``torch.autocast("cpu", dtype=torch.bfloat16)`` (torch only).
    jit : bool
        Switch ``jit_compile`` on after :func:`nucleiseg.training.compile_for_training` turned it off.
    """

    name: str
    backend: str
    policy: str = "float32"
    autocast: bool = False
    jit: bool = False


VARIANTS = {variant.name: variant for variant in (
    Variant("tensorflow", "tensorflow"),
    Variant("tensorflow-bf16", "tensorflow", policy="mixed_bfloat16"),
    Variant("tensorflow-xla", "tensorflow", jit=True),
    Variant("torch", "torch"),
    Variant("torch-bf16", "torch", policy="mixed_bfloat16"),
    Variant("torch-autocast", "torch", autocast=True),
    Variant("torch-compile", "torch", jit=True),
    Variant("jax", "jax"),
    Variant("jax-jit", "jax", jit=True),
)}

#: The reference of the ratio column.
REFERENCE = "tensorflow"


def parse_backends(text: str) -> list[str]:
    """``"tensorflow,torch"`` to ``["tensorflow", "torch"]``, in order, repeats kept.

    A name may repeat (e.g. TensorFlow first and last, to see how much a busy machine drifts).

    Raises
    ------
    BenchmarkError
        Naming the unknown variants and the known ones.
    """
    names = [part.strip() for part in str(text).split(",") if part.strip()]
    if not names:
        raise BenchmarkError(f"--backends: give at least one of {', '.join(VARIANTS)}")
    unknown = [name for name in names if name not in VARIANTS]
    if unknown:
        raise BenchmarkError(f"--backends: unknown {', '.join(map(repr, unknown))}; known: {', '.join(VARIANTS)}")
    return names


def environment_python(backend: str, repo: Path = REPO) -> tuple[Path, str]:
    """The Python of a backend's environment and the make target that builds it.

    Returns
    -------
    (Path, str)
        ``<repo>/<folder>/bin/python`` (which may not exist) and the target, e.g. ``.venv-torch/.installed``.
    """
    folder, target = ENVIRONMENTS[backend]
    return Path(repo) / folder / "bin" / "python", target


def available_cpus() -> int:
    """CPUs this process may run on (its affinity, not the machine's count)."""
    return len(os.sched_getaffinity(0))


def cpu_name() -> str:
    """The processor's model name from /proc/cpuinfo (the machine type where that is missing)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.machine()


# --- the worker: runs inside one backend's environment -------------------------------------------------


def limit_threads(backend: str, threads: int) -> str:
    """Let this process compute on ``threads`` CPUs; call before Keras builds anything.

    Returns
    -------
    str
        What was set, for the result.
    """
    # Pinning first: TensorFlow, PyTorch and XLA all size their default pools from the affinity.
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:threads])
    if backend == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        # One op at a time, each on N threads: no backend here runs independent ops concurrently.
        tf.config.threading.set_inter_op_parallelism_threads(1)
        return f"pinned to {threads} CPU(s); TensorFlow intra-op {threads}, inter-op 1"
    if backend == "torch":
        import torch

        torch.set_num_threads(threads)
        torch.set_num_interop_threads(1)
        return f"pinned to {threads} CPU(s); torch.set_num_threads({threads}), interop 1"
    return f"pinned to {threads} CPU(s); XLA CPU client sized by the affinity"


def synthetic_examples(config, images: int, seed: int) -> list:
    """``(stem, normalized image, labels)`` like :func:`nucleiseg.training.load_examples`, from synthetic images.

    The images are twice the crop on a side (at least 64 pixels), so crops land at
    different places, as on real fields.
    """
    from nucleiseg import synthetic
    from nucleiseg.normalization import normalize

    size = max(64, 2 * (config.crop + 2 * config.model_type().margin))
    examples = []
    for index in range(images):
        image, labels = synthetic.generate_one(index, seed=seed, size=size)
        examples.append((f"synth_{index:03d}", normalize(image, config.normalization), labels))
    return examples


def library_version(backend: str) -> str:
    """``"<backend> <version>"`` of the library Keras runs on."""
    module = {"tensorflow": "tensorflow", "torch": "torch", "jax": "jax"}[backend]
    return f"{module} {__import__(module).__version__}"


def time_training(variant: Variant, settings: dict) -> dict:
    """Time the project's training step on this process's Keras backend.

    Parameters
    ----------
    variant : Variant
        Must run on the backend Keras was started with (``KERAS_BACKEND``).
    settings : dict
        ``network``, ``width``, ``crop``, ``batch_size``, ``steps``, ``warmup``, ``threads``,
        ``robust``, ``seed``, ``images`` (synthetic images to crop from).

    Returns
    -------
    dict
        One result row: warm (median) and fastest step ms, cold first-step seconds, median
        batch-making ms, steps/s, crops/s, the losses of the first and last step, peak memory.

    Raises
    ------
    RuntimeError
        When Keras runs on another backend than the variant's.
    """
    threads_note = limit_threads(variant.backend, settings["threads"])
    import keras
    import numpy as np

    from nucleiseg import augment
    from nucleiseg.training import TrainConfig, build_network, make_batch

    if keras.backend.backend() != variant.backend:
        raise RuntimeError(f"{variant.name} runs on Keras' {variant.backend} backend, this process has {keras.backend.backend()}")
    augmentation = augment.AugmentationConfig.robust() if settings["robust"] else augment.AugmentationConfig()
    config = TrainConfig(network=settings["network"], base_filters=settings["width"], crop=settings["crop"],
                         batch_size=settings["batch_size"], seed=settings["seed"], augmentation=augmentation,
                         mixed_bfloat16=variant.policy == "mixed_bfloat16")
    keras.utils.set_random_seed(config.seed)
    examples = synthetic_examples(config, settings["images"], config.seed)
    network = build_network(config)
    if variant.jit:
        # Before the first step, so Keras builds its train function with jit.
        network.jit_compile = True
    step = network.train_on_batch
    if variant.autocast:
        import torch

        def step(x, y, sample_weight):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return network.train_on_batch(x, y, sample_weight=sample_weight)

    n_classes = len(config.model_type().classes)
    rng = np.random.default_rng(config.seed)
    batch_seconds, step_seconds, losses = [], [], []
    for _ in range(settings["warmup"] + settings["steps"]):
        started = time.perf_counter()
        x, classes, weights = make_batch(examples, config, rng)
        # One-hot as nucleiseg.training.train_step does: part of making the batch, not of the step.
        one_hot = np.eye(n_classes, dtype=np.float32)[classes]
        made = time.perf_counter()
        loss = step(x, one_hot, sample_weight=weights)
        # float() waits for the result: JAX dispatches asynchronously.
        losses.append(float(loss if np.isscalar(loss) else loss[0]))
        step_seconds.append(time.perf_counter() - made)
        batch_seconds.append(made - started)
    steps = Timing(step_seconds[0], step_seconds[settings["warmup"]:])
    batches = Timing(batch_seconds[0], batch_seconds[settings["warmup"]:])
    crops = config.batch_size
    return {
        "backend": variant.name, "keras_backend": variant.backend, "library": library_version(variant.backend),
        "policy": variant.policy, "autocast_bf16": variant.autocast, "jit_compile": bool(network.jit_compile),
        "threads": threads_note, "parameters": int(network.count_params()),
        "steps_per_s": 1.0 / steps.warm, "crops_per_s": crops / steps.warm, "step_ms": 1e3 * steps.warm,
        "step_ms_fastest": 1e3 * steps.fastest, "cold_s": steps.cold, "batch_ms": 1e3 * batches.warm,
        "crops_per_s_with_batch": crops / (steps.warm + batches.warm),
        "loss_first": losses[0], "loss_last": losses[-1],
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def worker_main(argv: list[str]) -> int:
    """``python -m benchmark.speed.training --worker VARIANT SETTINGS_JSON``: print one result line."""
    if len(argv) != 3 or argv[0] != "--worker":
        print("usage: python -m benchmark.speed.training --worker VARIANT SETTINGS_JSON "
              "(run by python -m benchmark speed training)", file=sys.stderr)
        return 2
    row = time_training(VARIANTS[argv[1]], json.loads(argv[2]))
    print(RESULT_MARK + json.dumps(row), flush=True)
    return 0


# --- the driver: one worker process per requested backend ----------------------------------------------


def worker_environment(variant: Variant, threads: int, repo: Path = REPO) -> dict:
    """Environment variables of a worker process."""
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONHOME", "VIRTUAL_ENV")}
    env.update(KERAS_BACKEND=variant.backend, PYTHONPATH=str(repo), OMP_NUM_THREADS=str(threads),
               TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    return env


def failed_row(name: str, why: str) -> dict:
    """The row of a backend that could not be measured."""
    return {"backend": name, "error": why}


def install(target: str, repo: Path = REPO) -> str | None:
    """Run ``make TARGET`` in the repository; None when it worked, else why not."""
    print(f"building with make {target} ...", file=sys.stderr, flush=True)
    done = subprocess.run(["make", target], cwd=repo, capture_output=True, text=True)
    if done.returncode:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return f"make {target} failed (exit {done.returncode}): {tail[0]}"
    return None


def measure_backend(name: str, settings: dict, repo: Path = REPO, build: bool = False, timeout: float | None = None) -> dict:
    """Run one variant's worker in its environment and return its row.

    Parameters
    ----------
    name : str
        A key of :data:`VARIANTS`.
    settings : dict
        As :func:`time_training` takes them.
    repo : Path
        Repository root holding the environments.
    build : bool
        Build a missing environment with make first (else report it as not installed).
    timeout : float, optional
        Seconds before the worker is stopped.

    Returns
    -------
    dict
        The worker's row, or ``{"backend", "error"}`` saying why there is none.
    """
    variant = VARIANTS[name]
    python, target = environment_python(variant.backend, repo)
    if not python.is_file() and build:
        problem = install(target, repo)
        if problem:
            return failed_row(name, problem)
    if not python.is_file():
        return failed_row(name, f"not installed: run make {target}")
    command = [str(python), "-m", "benchmark.speed.training", "--worker", name, json.dumps(settings)]
    try:
        done = subprocess.run(command, cwd=repo, env=worker_environment(variant, settings["threads"], repo),
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return failed_row(name, f"timed out after {timeout:.0f} s")
    results = [line[len(RESULT_MARK):] for line in done.stdout.splitlines() if line.startswith(RESULT_MARK)]
    if done.returncode or not results:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        return failed_row(name, f"failed (exit {done.returncode}): {lines[-1] if lines else 'no output'}")
    return json.loads(results[-1])


def add_ratios(rows: list[dict]) -> float | None:
    """Set each measured row's ``vs_tensorflow``: its crops/s over TensorFlow float32's.

    With several TensorFlow rows (first and last, say) the reference is their mean.

    Returns
    -------
    float or None
        The reference crops/s; None (and no ratios) without a measured TensorFlow row.
    """
    reference = [row["crops_per_s"] for row in rows if row["backend"] == REFERENCE and "error" not in row]
    if not reference:
        return None
    mean = statistics.fmean(reference)
    for row in rows:
        if "error" not in row:
            row["vs_tensorflow"] = row["crops_per_s"] / mean
    return mean


def measure(names: list[str], settings: dict, repo: Path = REPO, build: bool = False, timeout: float | None = None) -> list[dict]:
    """One row per name, measured one after the other (never two at once: they would share the CPUs).

    Each row also records the 1-minute load average when its run started (``load_before``).
    """
    rows = []
    for name in names:
        print(f"measuring {name} ...", file=sys.stderr, flush=True)
        load = os.getloadavg()[0]
        row = measure_backend(name, settings, repo, build, timeout)
        row["load_before"] = load
        rows.append(row)
    add_ratios(rows)
    return rows


def render(rows: list[dict], settings: dict, loads: tuple[float, float]) -> str:
    """The markdown table of :func:`measure`'s rows, with the settings and the load around it."""
    batch = settings["batch_size"]
    lines = [
        f"training step of {settings['network']} width {settings['width']}, batch {batch} x {settings['crop']}x{settings['crop']}"
        f"{', robust augmentation' if settings['robust'] else ''}; warm: median of {settings['steps']} steps after "
        f"{settings['warmup']} warm-up steps; {settings['threads']} thread(s) per backend; {cpu_name()}",
        f"load average (1 min) before: {loads[0]:.2f}, after: {loads[1]:.2f} on {os.cpu_count()} CPU(s)",
        "",
        "| backend | steps/s | crops/s | ms/step (warm) | cold first step s | batch ms | crops/s with batch | x tensorflow |",
        "|---|---|---|---|---|---|---|---|",
    ]
    seen: dict[str, int] = {}
    for row in rows:
        seen[row["backend"]] = seen.get(row["backend"], 0) + 1
        label = row["backend"] + (f" ({seen[row['backend']]})" if seen[row["backend"]] > 1 else "")
        if "error" in row:
            lines.append(f"| {label} | {row['error']} |  |  |  |  |  |  |")
            continue
        ratio = f"{row['vs_tensorflow']:.2f}" if "vs_tensorflow" in row else "-"
        lines.append(
            f"| {label} | {row['steps_per_s']:.2f} | {row['crops_per_s']:.2f} | {row['step_ms']:.0f} | {row['cold_s']:.2f} | "
            f"{row['batch_ms']:.0f} | {row['crops_per_s_with_batch']:.2f} | {ratio} |")
    return "\n".join(lines) + "\n"


def positive_int(text: str) -> int:
    """An integer >= 1 (argparse type)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def add_parser(tools) -> None:
    """Register ``speed training`` on the speed tools' sub-parser collection."""
    from nucleiseg import model_types

    parser = tools.add_parser("training", help="crops per second of the training step on each Keras backend",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default=DEFAULT_BACKENDS,
                        help=f"comma-separated, in order, repeats allowed; of {', '.join(VARIANTS)} (default {DEFAULT_BACKENDS})")
    parser.add_argument("--network", default="unet", choices=model_types.names(), help="model type (default unet)")
    parser.add_argument("--width", type=positive_int, default=16, help="base filters, for networks that have a width (default 16)")
    parser.add_argument("--crop", type=positive_int, default=256, help="crop side in pixels (default 256)")
    parser.add_argument("--batch-size", type=positive_int, default=4, help="crops per step (default 4)")
    parser.add_argument("--steps", type=positive_int, default=20, help="warm steps, median reported (default 20)")
    parser.add_argument("--warmup", type=positive_int, default=3, help="steps before the warm ones, the cold first one among them (default 3)")
    parser.add_argument("--threads", type=positive_int, default=None, help="CPUs per backend (default: all available)")
    parser.add_argument("--images", type=positive_int, default=4, help="synthetic images the crops come from (default 4)")
    parser.add_argument("--robust", action="store_true", help="the robust augmentation (elastic, zoom, signal transforms)")
    parser.add_argument("--seed", type=int, default=0, help="seed of images, weights and crops (default 0)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per backend before it is stopped (default 1800)")
    parser.add_argument("--install", action="store_true", help="build missing backend environments with make first")
    parser.add_argument("--json", action="store_true", help="print {settings, load, rows} as JSON instead of the table")
    parser.set_defaults(handler=main)


def main(args) -> int:
    """Measure the requested backends and print the table (or JSON); returns the exit status."""
    from nucleiseg import model_types

    names = parse_backends(args.backends)
    multiple = model_types.get(args.network).multiple
    if args.crop % multiple:
        raise BenchmarkError(f"--crop {args.crop}: {args.network} needs a multiple of {multiple}")
    cpus = available_cpus()
    threads = args.threads or cpus
    if threads > cpus:
        raise BenchmarkError(f"--threads {threads}: this process may use only {cpus} CPU(s)")
    settings = {"network": args.network, "width": args.width, "crop": args.crop, "batch_size": args.batch_size,
                "steps": args.steps, "warmup": args.warmup, "threads": threads, "robust": args.robust,
                "seed": args.seed, "images": args.images}
    before = os.getloadavg()[0]
    rows = measure(names, settings, build=args.install, timeout=args.timeout)
    loads = (before, os.getloadavg()[0])
    if args.json:
        print(json.dumps({"settings": settings, "cpu": cpu_name(), "cpus": os.cpu_count(),
                          "load_before": loads[0], "load_after": loads[1], "rows": rows}, indent=1))
    else:
        print(render(rows, settings, loads), end="")
    return 1 if any("error" in row for row in rows) else 0


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1:]))
