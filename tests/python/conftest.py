"""Start a real `rustai serve` on 127.0.0.1 (a free port) for the client tests.

The binary, plugin folder and model folder come from the environment that
scripts/test.sh sets: RUSTAI_BIN, RUSTAI_PLUGINS, RUSTAI_MODELS.
"""
import os
import re
import subprocess
import time

import httpx
import pytest


class Server:
    def __init__(self, *extra_args, env=None):
        cmd = [os.environ["RUSTAI_BIN"], "serve", "--host", "127.0.0.1:0", *extra_args]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env={**os.environ, **(env or {})}
        )
        line = self.proc.stdout.readline()
        match = re.search(r"http://(\S+)", line)
        if not match:
            self.proc.kill()
            raise RuntimeError(f"rustai serve did not start: {line!r}")
        self.url = f"http://{match.group(1)}"
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if httpx.get(self.url + "/health").status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("server never became healthy")

    def metric(self, name, headers=None):
        text = httpx.get(self.url + "/metrics", headers=headers).text
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope="session")
def server():
    s = Server("--keep-alive", "-1")
    yield s
    s.stop()


@pytest.fixture
def own_server():
    """A server of the test's own: only what the test loads shows in its /api/ps."""
    s = Server("--keep-alive", "-1")
    yield s
    s.stop()


@pytest.fixture(scope="session")
def keyed_server(tmp_path_factory):
    keys = tmp_path_factory.mktemp("keys") / "keys.txt"
    keys.write_text("# one key per line\nsecret-one\nsecret-two\n")
    s = Server("--api-key-file", str(keys), "--body-limit", "4096")
    yield s
    s.stop()
