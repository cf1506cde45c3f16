"""Running the receiver: uvicorn, one process or K workers sharing the listening socket.

Workers are stateless (the database holds everything), so K of them on PostgreSQL answer a duplicate
the same way whichever worker it reaches. SQLite takes one writer at a time: one worker.
"""

from __future__ import annotations

import os
from pathlib import Path

import uvicorn

from firmware.cec.receiver.app import CONFIG_ENV, ReceiverConfig, build_app
from firmware.cec.receiver.keys import DeviceKeys, load_or_make_receiver_key
from firmware.errors import UserError


def serve(config: ReceiverConfig, *, host: str = "127.0.0.1", port: int, workers: int = 1,
          tls_cert: Path | None = None, tls_key: Path | None = None, log_level: str = "warning",
          receipt_key: Path | None = None) -> None:
    """Serve until interrupted. Refuses (UserError) what cannot work before it binds the port."""
    if workers < 1:
        raise UserError(f"--workers {workers}: give 1 or more")
    if workers > 1 and not config.database:
        raise UserError(f"--workers {workers}: several workers need --database postgresql://… "
                        "(the embedded SQLite store takes one writer at a time); or use --workers 1")
    if (tls_cert is None) != (tls_key is None):
        raise UserError("--tls-cert and --tls-key go together (the certificate the boxes pin and its key)")
    for path in (tls_cert, tls_key):
        if path is not None and not path.is_file():
            raise UserError(f"{path}: no such file")
    DeviceKeys(config.devices)  # a bad key file is refused now, not in every worker
    key = load_or_make_receiver_key(config.store, receipt_key)  # made once, before the workers race to make it
    tls = {"ssl_certfile": str(tls_cert), "ssl_keyfile": str(tls_key)} if tls_cert and tls_key else {}
    common = {"host": host, "port": port, "log_level": log_level, "access_log": False, **tls}
    if workers == 1:
        uvicorn.run(build_app(config, receiver_key=key), **common)
        return
    os.environ[CONFIG_ENV] = config.to_json()
    uvicorn.run("firmware.cec.receiver.app:app_from_environment", factory=True, workers=workers, **common)
