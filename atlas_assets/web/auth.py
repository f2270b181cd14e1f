"""Who may read and who may write: dataset tokens for private maps, the server's write token for tags.

Reading. A private dataset (`is_public=False`) gets one random token, created the first time it is
asked for and kept in `$ATLAS_HOME/web/tokens.json` (mode 0600, the only place tokens live). The
server accepts it as `Authorization: Bearer <token>` or `?token=<token>`; without the right token it
answers exactly as it answers for a map that does not exist (same status, body and headers, and the
same work: an unknown map is checked against a decoy token read from the same file), so a stranger
learns nothing, not even that it exists.

Writing. Tags change only with the map server's write token (one per server process, random),
sent as `X-Atlas-Write-Token`, on public and private maps alike; a browser's request must also come
from the page's own origin. On a loopback server the viewer page carries the token (the person at
this machine is its single user); a server reachable from elsewhere does not put it in pages, and
`atlas serve --allow-remote` prints it for the people who may tag. See docs/security.md.

Tokens are compared as UTF-8 bytes in constant time, so any header value (non-ASCII included) gets
the ordinary refusal.
"""

from __future__ import annotations

import hmac
import json
import secrets
from pathlib import Path
from urllib.parse import urlsplit

from filelock import FileLock

from atlas_assets.config import atlas_home
from resources.atomic import write_bytes_atomic

TOKEN_FILE = "tokens.json"
WRITE_TOKEN_HEADER = "x-atlas-write-token"
# the key looked up for a map that does not exist: never a dataset id (those are uuids)
_DECOY_ID = "no-such-dataset"
_DECOY_TOKEN = "x" * 43  # as long as a real token (token_urlsafe(32))


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
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.parent.stat().st_mode & 0o077:  # nobody else may replace the token file
        path.parent.chmod(0o700)
    with FileLock(str(path) + ".lock", timeout=30):
        tokens = _read_tokens(path)
        if dataset_id not in tokens:
            tokens[dataset_id] = secrets.token_urlsafe(32)
            write_bytes_atomic(path, json.dumps(tokens).encode("utf-8"), mode=0o600)
        return tokens[dataset_id]


def decoy_token() -> str:
    """What a lookup for a map that does not exist costs: the same file read as a private map's."""
    return dataset_token(_DECOY_ID, create=False) or _DECOY_TOKEN


def presented_token(authorization: str | None, query_token: str | None) -> str | None:
    """The token a request carries: the bearer header first, then `?token=`."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return query_token or None


def _as_bytes(value: str) -> bytes:
    # header values arrive decoded as latin-1, query values as UTF-8: any str encodes with surrogates
    return value.encode("utf-8", "surrogatepass")


def token_matches(expected: str | None, presented: str | None) -> bool:
    """Constant-time comparison of bytes; a missing expected token (unknown or misconfigured map)
    is compared against a decoy, so it costs what a wrong token costs, and never matches."""
    candidate = _as_bytes(presented or "")
    if not expected:
        hmac.compare_digest(_as_bytes(_DECOY_TOKEN), candidate)
        return False
    return hmac.compare_digest(_as_bytes(expected), candidate) and bool(presented)


def new_write_token() -> str:
    """A fresh write token for one map server."""
    return secrets.token_urlsafe(32)


def write_refusal(
    expected: str, presented: str | None, origin: str | None, fetch_site: str | None, host: str | None
) -> str | None:
    """Why a tag write is refused (None: allowed).

    Allowed only with the server's write token, and, when a browser says where the request comes
    from (`Origin`, `Sec-Fetch-Site`), only from a page of this server (same host and port).
    """
    if fetch_site is not None and fetch_site.lower() not in ("same-origin", "none"):
        return "tags can only be changed from this server's own pages"
    if origin is not None:
        parts = urlsplit(origin)
        if origin == "null" or not parts.netloc or parts.netloc.lower() != (host or "").lower():
            return "tags can only be changed from this server's own pages"
    if not presented or not hmac.compare_digest(_as_bytes(expected), _as_bytes(presented)):
        return (
            "changing tags needs this map server's write token (header X-Atlas-Write-Token); the map page "
            "served on this machine carries it: reload the page"
        )
    return None
