"""Command line: ``python -m nucleiseg.ensemble OUT.json MEMBER.json MEMBER.json …``.

Writes an ensemble card for networks trained separately, for example DeepCell
runs with different ``--seed`` values (``--snapshots 1``), which is how the
paper built its ensemble of five. The CellProfiler modules and the benchmark
accept the card wherever they accept a model card. Tune its post-processing on
the averaged probabilities afterwards:
``python -m nucleiseg.tune_postprocess OUT.json --data DIR --split train``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .cards import ModelError, write_ensemble


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nucleiseg.ensemble", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="ensemble card to write (.json)")
    parser.add_argument("members", type=Path, nargs="+", help="member model cards (or their .weights.h5 files)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing card at OUT")
    args = parser.parse_args(argv)
    try:
        path = write_ensemble(args.out, args.members, overwrite=args.overwrite)
    except ModelError as error:
        parser.error(str(error))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
