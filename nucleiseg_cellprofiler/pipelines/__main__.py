"""``python -m nucleiseg_cellprofiler.pipelines KIND ... --out DIR``: see :mod:`.build`."""

from .build import main

raise SystemExit(main())
