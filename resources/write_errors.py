"""The error of a write an object store refused, one wording for the dataset store and index outputs."""

from __future__ import annotations

from atlas_assets.errors import StoreWriteError


def error_chain(error: BaseException, most: int = 4) -> str:
    """'OSError: ...; caused by ClientError: ...': an error and those under it, outermost first."""
    parts: list[str] = []
    current: BaseException | None = error
    while current is not None and len(parts) < most:
        parts.append(f"{type(current).__name__}: {current}")
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return "; caused by ".join(parts)


def object_write_error(location: str, size: int, error: BaseException, state: str, retry: str) -> StoreWriteError:
    """A StoreWriteError naming the object, the store's own words (every error in the chain), what
    is left as it was (`state`) and what to check before `retry`.

    Raise it `from None`: a failed step is reported by its root cause, and this is the error that
    names the URI and the fix."""
    return StoreWriteError(
        f"writing {location} ({size:,} bytes) to the object store failed ({error_chain(error)}); "
        f"{state}. Check that the store is reachable from this process, that its credentials may write "
        f"to that bucket, and the store's health (throttling: SlowDown/503), then {retry}."
    )
