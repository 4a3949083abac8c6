"""``python -m streamrec.cli``: the ``streamrec`` command."""

import sys

from streamrec.cli import main

sys.exit(main())
