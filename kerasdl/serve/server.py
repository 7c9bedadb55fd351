"""Run the app under waitress, a production WSGI server (never Flask's development server).

It binds to 127.0.0.1 unless told otherwise, and refuses any other address unless an API key is set (read
from an environment variable, so it never appears in a command line or a process list).
"""

from __future__ import annotations

import ipaddress
import os
import socket

from kerasdl.errors import KerasdlError
from kerasdl.serve.app import ServerConfig, create_app
from kerasdl.serve.repository import ModelRepository

UNREAD_BODY_FACTOR = 4  # bodies over this many times the app's limit are cut off by waitress (a plain-text 413)


def is_loopback(host: str) -> bool:
    """Whether every address `host` names is a loopback one (127.0.0.0/8, ::1, localhost)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            infos = socket.getaddrinfo(host, None)
        except socket.gaierror:
            return False
        return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


def api_key_from(env_name: str | None) -> str | None:
    """The API key held by environment variable `env_name` (None: no key); an unset or empty one is an error."""
    if env_name is None:
        return None
    key = os.environ.get(env_name, "")
    if not key:
        raise KerasdlError(f"--api-key-env {env_name}: that environment variable is unset or empty")
    return key


def check_binding(host: str, api_key: str | None) -> None:
    """Refuse a non-loopback address unless an API key guards the API."""
    if not is_loopback(host) and api_key is None:
        raise KerasdlError(
            f"refusing to serve on {host} without an API key: anyone who can reach it could use the models; "
            "set one with --api-key-env NAME (the variable holding the key), or keep the default 127.0.0.1"
        )


def create_server(repository: ModelRepository, host: str, port: int, threads: int, config: ServerConfig):
    """Waitress bound to `host:port` and serving the app, not yet running (`.run()` serves until interrupted)."""
    from waitress.server import create_server as waitress_server

    check_binding(host, config.api_key)
    try:  # the app answers a body over the limit with its JSON 413; waitress refuses one far over it unread
        return waitress_server(create_app(repository, config), host=host, port=port, threads=threads,
                               ident="kerasdl", max_request_body_size=UNREAD_BODY_FACTOR * config.limits.max_body_bytes)
    except OSError as err:
        raise KerasdlError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
