"""Access tokens of private datasets, and the check the map server applies to every request.

A private dataset (`is_public=False`) gets one random token, created the first time it is asked for
and kept in `$ATLAS_HOME/web/tokens.json` (mode 0600). The server accepts it as
`Authorization: Bearer <token>` or `?token=<token>`; without the right token it answers exactly as
it answers for a map that does not exist, so a stranger learns nothing, not even that it exists.
"""

from __future__ import annotations

import hmac
import json
import secrets
from pathlib import Path

from filelock import FileLock

from atlas_assets.config import atlas_home
from resources.atomic import write_bytes_atomic

TOKEN_FILE = "tokens.json"


def _token_path() -> Path:
    return atlas_home() / "web" / TOKEN_FILE


def _read_tokens(path: Path) -> dict[str, str]:
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return {}


def dataset_token(dataset_id: str, *, create: bool = True) -> str | None:
    """The access token of the dataset with this id (uuid); created on first use when `create`."""
    path = _token_path()
    tokens = _read_tokens(path)
    if dataset_id in tokens or not create:
        return tokens.get(dataset_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock", timeout=30):
        tokens = _read_tokens(path)
        if dataset_id not in tokens:
            tokens[dataset_id] = secrets.token_urlsafe(32)
            write_bytes_atomic(path, json.dumps(tokens).encode("utf-8"), mode=0o600)
        return tokens[dataset_id]


def presented_token(authorization: str | None, query_token: str | None) -> str | None:
    """The token a request carries: the bearer header first, then `?token=`."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return query_token or None


def token_matches(expected: str | None, presented: str | None) -> bool:
    """Constant-time comparison; a missing expected token (misconfigured private map) never matches."""
    if not expected or not presented:
        # compare anyway so a missing token costs the same time as a wrong one
        hmac.compare_digest("x" * 43, (presented or "")[:43])
        return False
    return hmac.compare_digest(expected.encode(), presented.encode())
