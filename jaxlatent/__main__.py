"""``python -m jaxlatent``: the ``jaxlatent`` command."""

import sys

from jaxlatent.cli import main

sys.exit(main())
