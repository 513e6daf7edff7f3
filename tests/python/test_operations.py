"""Operating the server: the bounded queue (503), rate limits (429), downloads,
upstream fallback and graceful shutdown, each against a real `rustai serve`."""
import hashlib
import http.server
import json
import os
import shutil
import signal
import threading
import time
from functools import partial
from pathlib import Path

import httpx
import ollama
import openai
import pytest

from conftest import Server

MODEL = "smollm2"
REPO = Path(__file__).resolve().parents[2]
SMOLLM2 = REPO / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"


def long_stream(url):
    body = {"model": MODEL, "prompt": "Write a long story about a dragon.", "options": {"num_predict": 4000}}
    return httpx.stream("POST", url + "/api/generate", json=body, timeout=120)


def test_full_queue_is_refused_with_503():
    s = Server("--parallel", "1", "--max-queue", "1")
    try:
        with long_stream(s.url) as running:
            lines = running.iter_lines()
            next(lines)  # the first request is generating
            queued = {}

            def second():
                queued["r"] = httpx.post(s.url + "/api/generate", json={"model": MODEL, "prompt": "Hi", "stream": False, "options": {"num_predict": 3}}, timeout=120)

            t = threading.Thread(target=second)
            t.start()
            deadline = time.time() + 10
            while time.time() < deadline and s.metric("rustai_queue_waiting") < 1:
                time.sleep(0.05)
            r = httpx.post(s.url + "/api/generate", json={"model": MODEL, "prompt": "Hi"})
            assert r.status_code == 503 and "busy" in r.json()["error"]
            r = httpx.post(s.url + "/v1/chat/completions", json={"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]})
            assert r.status_code == 503 and r.json()["error"]["message"]
        # Closing the first stream cancels it; the queued request then runs.
        t.join(timeout=60)
        assert queued["r"].status_code == 200 and queued["r"].json()["done"]
    finally:
        s.stop()


def test_flood_is_limited_with_429_and_retry_after():
    s = Server("--rate-limit", "5")
    try:
        codes = [httpx.get(s.url + "/api/tags") for _ in range(12)]
        limited = [r for r in codes if r.status_code == 429]
        assert len(limited) >= 6
        assert int(limited[0].headers["retry-after"]) >= 1
        assert "rate limit" in limited[0].json()["error"]
        assert httpx.get(s.url + "/health").status_code == 200  # probes are not limited
        assert s.metric("rustai_rate_limited_total") >= 6
    finally:
        s.stop()


@pytest.fixture
def file_server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    os.link(SMOLLM2, root / "tiny.gguf") if hasattr(os, "link") else shutil.copy(SMOLLM2, root / "tiny.gguf")
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def wait_download(url, job):
    deadline = time.time() + 60
    while time.time() < deadline:
        st = httpx.get(f"{url}/download/{job}").json()
        if st["status"] != "running":
            return st
        time.sleep(0.1)
    raise AssertionError("download did not finish")


def test_download_checks_sha256_and_the_registry_picks_it_up(tmp_path, file_server):
    models = tmp_path / "models"
    models.mkdir()
    # The file server is on 127.0.0.1: by default a private address is refused.
    s = Server(env={"RUSTAI_MODELS": str(models)})
    try:
        r = httpx.post(s.url + "/download/start", json={"url": file_server + "/tiny.gguf"})
        assert r.status_code == 400 and "--allow-private-downloads" in r.json()["error"]
    finally:
        s.stop()
    s = Server("--allow-private-downloads", env={"RUSTAI_MODELS": str(models)})
    try:
        r = httpx.post(s.url + "/download/start", json={"url": file_server + "/tiny.gguf", "sha256": "0" * 64})
        assert r.status_code == 202
        st = wait_download(s.url, r.json()["id"])
        assert st["status"] == "failed" and "sha256 mismatch" in st["error"]
        assert list(models.iterdir()) == [], "a wrong digest leaves nothing behind"

        sha = hashlib.sha256(SMOLLM2.read_bytes()).hexdigest()
        r = httpx.post(s.url + "/download/start", json={"url": file_server + "/tiny.gguf", "sha256": sha})
        st = wait_download(s.url, r.json()["id"])
        assert st["status"] == "done" and st["bytes"] == SMOLLM2.stat().st_size
        assert [p.name for p in models.iterdir()] == ["tiny.gguf"]
        names = [m.model for m in ollama.Client(host=s.url).list().models]
        assert any(n.startswith("tiny") for n in names), names
        r = httpx.post(s.url + "/download/start", json={"url": "file:///etc/passwd"})
        assert r.status_code == 400
        r = httpx.post(s.url + "/download/start", json={"url": file_server + "/tiny.gguf", "name": "models.toml"})
        assert r.status_code == 400 and "only model files" in r.json()["error"]
        assert httpx.get(s.url + "/download/dl-999").status_code == 404
    finally:
        s.stop()


def test_unknown_models_are_forwarded_upstream(tmp_path, server):
    empty = tmp_path / "none"
    empty.mkdir()
    s = Server("--upstream", server.url, env={"RUSTAI_MODELS": str(empty)})
    try:
        client = ollama.Client(host=s.url)
        r = client.chat(model=MODEL, messages=[{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": "What is the capital of France?"}], options={"temperature": 0, "num_predict": 20})
        assert "Paris" in r.message.content
        parts = list(client.generate(model=MODEL, prompt="What is the capital of France?", system="You are a helpful assistant.", stream=True, options={"temperature": 0, "num_predict": 20}))
        assert len(parts) > 3 and "Paris" in "".join(p.response for p in parts)
        o = openai.OpenAI(base_url=s.url + "/v1", api_key="x")
        r = o.chat.completions.create(model=MODEL, messages=[{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": "What is the capital of France?"}], temperature=0, max_tokens=20)
        assert "Paris" in r.choices[0].message.content
        assert client.list().models == [], "the fallback does not claim the upstream's models"
    finally:
        s.stop()


def test_graceful_shutdown_finishes_running_requests():
    s = Server()
    body = {"model": MODEL, "prompt": "Count from one to twenty.", "options": {"num_predict": 60, "temperature": 0}}
    with httpx.stream("POST", s.url + "/api/generate", json=body, timeout=60) as r:
        lines = r.iter_lines()
        next(lines)
        s.proc.send_signal(signal.SIGTERM)
        rest = [json.loads(l) for l in lines if l]
    assert rest[-1]["done"] is True and rest[-1]["eval_count"] > 1
    assert s.proc.wait(timeout=20) == 0
    with pytest.raises(httpx.ConnectError):
        httpx.get(s.url + "/health")


def test_local_model_over_budget_falls_back_to_a_remote_one(tmp_path, server):
    """models.toml: the local model's fallback is a remote model served (through the openai
    plugin) by another rustai server; with a budget too small for the local model, the remote
    one answers, and the response says so."""
    models = tmp_path / "models"
    models.mkdir()
    os.link(SMOLLM2, models / "smol.gguf")
    (models / "models.toml").write_text(
        f"""
[[models]]
id = "local-smol"
location = "smol.gguf"
[models.config]
fallback = "cloud-smol"

[[models]]
id = "cloud-smol"
provider = "openai"
location = "{server.url}/v1"
tags = ["cloud"]
[models.config]
model = "smollm2"
"""
    )
    s = Server("--budget", "1MiB", env={"RUSTAI_MODELS": str(models)})
    try:
        r = httpx.post(
            s.url + "/v1/chat/completions",
            json={"model": "local-smol", "messages": [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": "What is the capital of France?"}], "temperature": 0, "max_tokens": 20},
            timeout=120,
        ).json()
        assert "Paris" in r["choices"][0]["message"]["content"]
        assert r["rustai"]["model"] == "cloud-smol" and r["rustai"]["plugin"] == "openai"
        assert r["rustai"]["fell_back_from"][0]["model"] == "local-smol"
        assert "budget" in r["rustai"]["fell_back_from"][0]["reason"]
    finally:
        s.stop()
