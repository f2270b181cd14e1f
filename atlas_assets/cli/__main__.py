"""`python -m atlas_assets.cli ...`: the same as the `atlas` console script."""

import sys

from atlas_assets.cli.parser import main

sys.exit(main())
