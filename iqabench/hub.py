"""Whether anything can be downloaded from the Hugging Face hub right now, found out at once.

A model whose weights are not in the local cache asks the hub for them; with no
network, huggingface_hub retries for the better part of a minute before it
gives up, and the user waits for an error iqabench could have given at once.
:func:`offline_reason` answers in at most a few seconds: offline mode is set,
or the hub's host cannot be reached (one TCP connection, no retries). Behind a
proxy it does not guess and lets the hub client try.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

#: seconds to wait for the hub's host to accept a connection
PROBE_TIMEOUT = 3.0
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "HTTP_PROXY", "http_proxy")


def offline_reason(timeout: float = PROBE_TIMEOUT) -> str | None:
    """Why the hub cannot be reached now (offline mode, no connection), or ``None`` when it can (or may) be."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "offline mode is on (HF_HUB_OFFLINE)"
    if any(os.environ.get(name) for name in PROXY_VARIABLES):
        return None  # a direct connection says nothing about the proxy's
    endpoint = urlparse(constants.ENDPOINT)
    host = endpoint.hostname or "huggingface.co"
    port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        return f"{host} cannot be reached ({exc.strerror or type(exc).__name__})"
    return None
