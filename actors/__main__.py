"""``python -m wavecrest.actors`` is the ``wavecrest`` command."""

import sys

from ._cli import main

sys.exit(main())
