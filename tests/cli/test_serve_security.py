"""`atlas serve` beyond loopback: refused without --allow-remote; with it, a warning and no write
token in pages (issue 21)."""

from __future__ import annotations

import pytest

from atlas_assets.cli import main
from atlas_assets.web import app as web_app


@pytest.fixture
def started(monkeypatch) -> list[tuple]:
    """Stands in for uvicorn: records what would have been served instead of serving it."""
    calls: list[tuple] = []
    monkeypatch.setattr(web_app, "run_server", lambda app, host, port, log_level="warning": calls.append((app, host, port)))
    return calls


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "10.0.0.5", "example.org"])
def test_a_non_loopback_host_is_refused_without_allow_remote(atlas_home, capsys, started, host) -> None:
    assert main(["serve", "--host", host]) == 2
    err = capsys.readouterr().err
    assert err.startswith("atlas: error:") and "--allow-remote" in err and "clear text" in err
    assert started == []  # nothing was bound


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_hosts_serve_as_before_and_pages_carry_the_write_token(atlas_home, capsys, started, host) -> None:
    assert main(["serve", "--host", host]) == 0
    out = capsys.readouterr().out
    assert "warning" not in out and "write token" not in out
    app = started[0][0]
    assert started[0][1] == host
    assert "TrustedHostMiddleware" in [m.cls.__name__ for m in app.user_middleware]  # DNS rebinding stopped


def test_allow_remote_warns_and_keeps_the_write_token_out_of_pages(atlas_home, capsys, started) -> None:
    assert main(["serve", "--host", "0.0.0.0", "--allow-remote"]) == 0
    out = capsys.readouterr().out
    assert "warning:" in out and "clear text" in out and "TLS" in out
    app = started[0][0]
    token = app.state.write_token
    assert len(token) >= 40 and f"#write={token}" in out  # handed to the person running it, not to pages


def test_behind_a_proxy_on_this_machine_allow_remote_keeps_loopback_but_not_the_page_token(atlas_home, capsys, started) -> None:
    assert main(["serve", "--allow-remote"]) == 0
    out = capsys.readouterr().out
    assert "reverse proxy" in out and "clear text" not in out
    assert started[0][1] == "127.0.0.1"
    # the proxy passes the public name as Host: no loopback-only Host check then
    assert "TrustedHostMiddleware" not in [m.cls.__name__ for m in started[0][0].user_middleware]
