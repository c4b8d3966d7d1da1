"""``python -m jaxlatent.cli``: the ``jaxlatent`` command."""

import sys

from jaxlatent.cli import main

sys.exit(main())
