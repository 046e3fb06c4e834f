"""The pipeline generator: every shipped ``.cppipe`` file is written by :func:`.build.build`.

:mod:`.kinds` is the registry of pipeline kinds; :mod:`.classical` and
:mod:`.network` register theirs when this package is imported. :mod:`.modules`
builds the CellProfiler modules every pipeline shares.
"""

from . import classical, network  # noqa: F401  (register their pipeline kinds)
