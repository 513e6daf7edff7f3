"""Tools over HTTP against a real `rustai serve`: GET /v1/tools lists the tool plugins'
tools in OpenAI's `tools` shape, POST /v1/tools/{name} (body = the arguments object) runs
one; errors have OpenAI's error shape and the statuses the server documents."""
import os
import shutil
from pathlib import Path

import httpx
import pytest

from conftest import Server


def call(url, name, arguments, **kw):
    return httpx.post(f"{url}/v1/tools/{name}", json=arguments, timeout=60, **kw)


def test_tools_are_listed_in_openai_shape(server):
    r = httpx.get(server.url + "/v1/tools")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "list"
    by_name = {t["function"]["name"]: t for t in body["data"]}
    calc = by_name["calculator"]
    assert calc["type"] == "function" and calc["plugin"] == "calculator"
    assert calc["function"]["parameters"]["required"] == ["expression"]
    assert "exact" in calc["function"]["description"]
    assert {"read_file", "list_dir"} <= by_name.keys()
    assert by_name["read_file"]["plugin"] == "files"


def test_calculator_answers_exactly_and_reports_errors(server):
    r = call(server.url, "calculator", {"expression": "1234*5678"})
    assert r.status_code == 200, r.text
    assert r.json() == {"name": "calculator", "plugin": "calculator", "content": "7006652", "is_error": False}
    assert call(server.url, "calculator.calculator", {"expression": "2^10"}).json()["content"] == "1024"

    # A tool that ran and failed answers 200, with the reason for the model.
    failed = call(server.url, "calculator", {"expression": "1/0"}).json()
    assert failed["is_error"] is True and "division by zero" in failed["content"]
    overflow = call(server.url, "calculator", {"expression": "9223372036854775807 + 1"}).json()
    assert overflow["is_error"] is True and "overflow" in overflow["content"]


def test_bad_calls_get_openai_errors(server):
    r = call(server.url, "abacus", {})
    assert r.status_code == 404, r.text
    assert r.json()["error"]["type"] == "not_found_error" and "calculator" in r.json()["error"]["message"]
    r = call(server.url, "calculator", [1, 2])
    assert r.status_code == 400 and "JSON object" in r.json()["error"]["message"], r.text
    # Arguments the model can fix are the tool's answer, for the model to read.
    r = call(server.url, "calculator", {"expr": "1"})
    assert r.status_code == 200 and r.json()["is_error"] is True and "expression" in r.json()["content"], r.text
    r = httpx.post(server.url + "/v1/tools/calculator", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "malformed JSON" in r.json()["error"]["message"], r.text


def test_tools_need_the_api_key_when_keys_are_set(keyed_server):
    assert httpx.get(keyed_server.url + "/v1/tools").status_code == 401
    assert call(keyed_server.url, "calculator", {"expression": "1+1"}).status_code == 401
    auth = {"Authorization": "Bearer secret-one"}
    assert httpx.get(keyed_server.url + "/v1/tools", headers=auth).status_code == 200
    r = call(keyed_server.url, "calculator", {"expression": "1+1"}, headers=auth)
    assert r.status_code == 200 and r.json()["content"] == "2", r.text


def test_files_reads_only_inside_its_configured_root(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "notes.txt").write_text("remember the milk\n")
    (tmp_path / "secret.txt").write_text("the secret")
    os.symlink(tmp_path / "secret.txt", root / "leak.txt")
    config = tmp_path / "plugins.toml"
    config.write_text(f'[files]\nroots = ["{root}"]\n')
    s = Server(env={"RUSTAI_PLUGINS_CONFIG": str(config)})
    try:
        ok = call(s.url, "read_file", {"path": "notes.txt"}).json()
        assert ok == {"name": "read_file", "plugin": "files", "content": "remember the milk\n", "is_error": False}
        for path in ["../secret.txt", str(tmp_path / "secret.txt"), "leak.txt"]:
            out = call(s.url, "read_file", {"path": path}).json()
            assert out["is_error"] is True and "the secret" not in out["content"], out
        listing = call(s.url, "list_dir", {"path": "."}).json()
        assert "notes.txt (18 bytes)" in listing["content"].splitlines(), listing
    finally:
        s.stop()


def test_a_slow_tool_times_out_with_504(tmp_path):
    # The `slow-tool` test fixture, built beside the rustai binary.
    fixture = Path(os.environ["RUSTAI_BIN"]).parent / "libfixture_slow_tool.so"
    if not fixture.is_file():
        pytest.skip(f"{fixture} is not built (cargo build --release --workspace builds it)")
    plugins = tmp_path / "plugins"
    plugins.mkdir(mode=0o700)
    shutil.copy(fixture, plugins / fixture.name)
    s = Server("--tool-timeout", "0.3", env={"RUSTAI_PLUGINS": str(plugins)})
    try:
        assert call(s.url, "sleep", {"ms": 5}).json()["content"] == "slept 5 ms"
        r = call(s.url, "sleep", {"ms": 3000})
        assert r.status_code == 504, r.text
        assert "did not finish within 0.3 s" in r.json()["error"]["message"]
        # The server goes on answering while the call finishes in the background.
        assert call(s.url, "sleep", {"ms": 1}).status_code == 200
    finally:
        s.stop()
