"""The Dagster code location: every dataset's asset family, read from the store's registry."""

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions()
