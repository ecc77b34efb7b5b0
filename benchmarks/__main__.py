"""``python -m benchmarks``: wavecrest against its peers; see :mod:`benchmarks.bench_run`."""

from .bench_run import main

raise SystemExit(main())
