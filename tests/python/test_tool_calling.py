"""Tool calling through the official clients, the real SmolLM2 and real tool plugins:
OpenAI `tools` (streamed and not) and the tool-result round trip, Ollama `tools`,
server-side execution of plugin tools, log-probabilities and `n`, the prompt routes,
and a GGUF whose chat template llama.cpp's matcher does not know.

SmolLM2-135M is tiny: the tests assert the structure (a call whose arguments parse and
match the schema, a final message after the result), never the wording."""
import json
import os
import shutil
import struct

import httpx
import jsonschema
import ollama
import openai
import pytest

from conftest import Server

MODEL = "smollm2"
CITY = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "The current weather in a city", "parameters": CITY}}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused")


def test_openai_required_tool_call_parses_and_the_result_gets_an_answer(server):
    c = client(server)
    r = c.chat.completions.create(model=MODEL, messages=ASK, tools=[WEATHER], tool_choice="required", temperature=0, max_tokens=128)
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls", choice
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.function.name == "get_weather" and call.id
    jsonschema.validate(json.loads(call.function.arguments), CITY)
    follow = ASK + [
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "Sunny and 24 degrees"},
    ]
    r = c.chat.completions.create(model=MODEL, messages=follow, tools=[WEATHER], temperature=0, max_tokens=48)
    assert r.choices[0].finish_reason in ("stop", "length") and r.choices[0].message.tool_calls is None
    assert r.choices[0].message.content.strip()


def test_openai_streamed_tool_call_deltas_assemble(server):
    stream = client(server).chat.completions.create(
        model=MODEL, messages=ASK, tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "get_weather"}},
        temperature=0, max_tokens=128, stream=True,
    )
    calls, finish, roles = {}, None, []
    for chunk in stream:
        delta = chunk.choices[0].delta
        roles.append(delta.role)
        for t in delta.tool_calls or []:
            entry = calls.setdefault(t.index, {"id": "", "name": "", "arguments": ""})
            entry["id"] += t.id or ""
            entry["name"] += (t.function.name or "") if t.function else ""
            entry["arguments"] += (t.function.arguments or "") if t.function else ""
        finish = chunk.choices[0].finish_reason or finish
    assert finish == "tool_calls" and roles[0] == "assistant"
    assert len(calls) == 1 and calls[0]["name"] == "get_weather" and calls[0]["id"].startswith("call_")
    jsonschema.validate(json.loads(calls[0]["arguments"]), CITY)


def test_openai_tool_choice_none_and_auto_answer_in_text(server):
    for choice in ("none", "auto"):
        r = client(server).chat.completions.create(model=MODEL, messages=ASK, tools=[WEATHER], tool_choice=choice, temperature=0, max_tokens=16)
        assert r.choices[0].message.tool_calls is None and r.choices[0].message.content


class ToolChoiceOllama(ollama.Client):
    """The ollama client, adding RustAI's `tool_choice` extension to /api/chat (Ollama's API
    has none, and a 135M model never calls a tool unasked)."""

    def _request(self, cls, *args, **kwargs):
        if kwargs.get("json") is not None and args[1] == "/api/chat":
            kwargs["json"]["tool_choice"] = "required"
        return super()._request(cls, *args, **kwargs)


def test_ollama_tool_call_and_result_round_trip(server):
    c = ToolChoiceOllama(host=server.url)
    r = c.chat(model=MODEL, messages=ASK, tools=[WEATHER], options={"temperature": 0, "num_predict": 128})
    calls = r.message.tool_calls
    assert calls and calls[0].function.name == "get_weather"
    jsonschema.validate(dict(calls[0].function.arguments), CITY)
    streamed = [p for part in c.chat(model=MODEL, messages=ASK, tools=[WEATHER], stream=True, options={"temperature": 0, "num_predict": 128})
                for p in (part.message.tool_calls or [])]
    assert streamed and streamed[0].function.name == "get_weather"
    follow = ASK + [r.message.model_dump(exclude_none=True), {"role": "tool", "tool_name": "get_weather", "content": "Sunny"}]
    done = ollama.Client(host=server.url).chat(model=MODEL, messages=follow, tools=[WEATHER], options={"temperature": 0, "num_predict": 32})
    assert not done.message.tool_calls and done.message.content.strip()
    assert "tools" in ollama.Client(host=server.url).show(MODEL).capabilities


def test_server_side_calculator_runs_and_its_result_reaches_the_model(server):
    ask = [{"role": "user", "content": "What is 1234*5678?"}]
    r = client(server).chat.completions.create(model=MODEL, messages=ask, temperature=0, max_tokens=128, extra_body={"rustai_tools": ["calculator"]})
    meta = r.model_extra["rustai"]
    assert meta["steps"] >= 2, meta
    call = meta["tool_calls"][0]
    assert call["name"] == "calculator" and call["plugin"] == "calculator" and not call["is_error"]
    assert call["result"] == "7006652", call
    # The result went back to the model, which then answered (its wording is a tiny model's).
    assert r.choices[0].finish_reason in ("stop", "length") and r.choices[0].message.content.strip()
    # Streamed: the final answer streams, the executed calls are in the last chunk's metadata.
    stream = client(server).chat.completions.create(
        model=MODEL, messages=ask, temperature=0, max_tokens=128, stream=True, extra_body={"rustai_tools": ["calculator"]}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    assert chunks[-1].model_extra["rustai"]["tool_calls"][0]["result"] == "7006652"


def test_logprobs_and_several_choices(server):
    r = client(server).chat.completions.create(model=MODEL, messages=ASK, max_tokens=5, logprobs=True, top_logprobs=3, n=2, seed=7)
    assert len(r.choices) == 2 and [c.index for c in r.choices] == [0, 1]
    content = r.choices[0].logprobs.content
    assert len(content) == r.usage.completion_tokens // 2 or len(content) >= 1
    for entry in content:
        assert entry.logprob <= 0 and len(entry.top_logprobs) == 3
        best = entry.top_logprobs[0].logprob
        assert all(t.logprob <= best for t in entry.top_logprobs)
    greedy = client(server).chat.completions.create(model=MODEL, messages=ASK, max_tokens=3, logprobs=True, top_logprobs=1, temperature=0)
    for entry in greedy.choices[0].logprobs.content:
        # Greedy picks the most likely token.
        assert entry.token == entry.top_logprobs[0].token
    legacy = httpx.post(server.url + "/v1/completions", json={"model": MODEL, "prompt": "The sky is", "max_tokens": 3, "logprobs": 2}, timeout=60).json()
    lp = legacy["choices"][0]["logprobs"]
    assert len(lp["tokens"]) == len(lp["token_logprobs"]) == len(lp["top_logprobs"]) >= 1


def test_tokenize_detokenize_and_apply_template(server):
    t = httpx.post(server.url + "/tokenize", json={"content": "Hello world", "with_pieces": True}, timeout=60).json()
    ids = [p["id"] for p in t["tokens"]]
    assert "".join(p["piece"] for p in t["tokens"]) == "Hello world"
    assert httpx.post(server.url + "/detokenize", json={"tokens": ids}).json() == {"content": "Hello world"}
    a = httpx.post(server.url + "/apply-template", json={"model": MODEL, "messages": ASK, "tools": [WEATHER], "tool_choice": "required"}).json()
    assert a["tool_format"] == "generic"
    assert a["prompt"].startswith("<|im_start|>system\n") and '"name":"get_weather"' in a["prompt"].replace(" ", "")
    assert a["prompt"].endswith("<|im_start|>user\nWhat is the weather in Paris?<|im_end|>\n<|im_start|>assistant\n")


# A template llama.cpp's built-in matcher does not recognise (it would refuse it).
ODD_TEMPLATE = (
    "{%- for m in messages -%}{{ '### ' ~ m['role'] | upper ~ ':\\n' ~ m['content'] | trim ~ '\\n\\n' }}{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '### ASSISTANT:\\n' }}{%- endif -%}"
)


def gguf_with_template(src, dst, template):
    """Copy the GGUF `src` to `dst` with `tokenizer.chat_template` replaced (GGUF v3:
    header, key/values, tensor infos, padding to the alignment, tensor data)."""
    data = open(src, "rb").read()
    pos = 0

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return v[0]

    def string():
        nonlocal pos
        n = take("Q")
        pos += n
        return data[pos - n:pos]

    sizes = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}

    def skip(kind):
        if kind == 8:
            string()
        elif kind == 9:
            inner, n = take("I"), take("Q")
            for _ in range(n):
                skip(inner)
        else:
            take(sizes[kind])

    assert data[:4] == b"GGUF"
    pos = 4
    version, n_tensors, n_kv = take("I"), take("Q"), take("Q")
    out = bytearray(data[:4] + struct.pack("<IQQ", version, n_tensors, n_kv))
    alignment = 32
    for _ in range(n_kv):
        start = pos
        key = string()
        kind = take("I")
        if key == b"tokenizer.chat_template":
            string()
            body = template.encode()
            out += struct.pack("<Q", len(key)) + key + struct.pack("<IQ", 8, len(body)) + body
            continue
        value_at = pos
        skip(kind)
        if key == b"general.alignment":
            alignment = struct.unpack_from("<I", data, value_at)[0]
        out += data[start:pos]
    infos_start = pos
    for _ in range(n_tensors):
        string()
        dims = take("I")
        pos += 8 * dims + 4 + 8
    out += data[infos_start:pos]
    data_start = (pos + alignment - 1) // alignment * alignment
    out += b"\0" * ((-len(out)) % alignment)
    out += data[data_start:]
    open(dst, "wb").write(out)


def test_a_template_llama_cpp_does_not_know_renders_through_jinja(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    gguf_with_template(os.path.join(os.environ["RUSTAI_MODELS"], "SmolLM2-135M-Instruct.Q4_1.gguf"), models / "odd-smollm2.gguf", ODD_TEMPLATE)
    s = Server(env={"RUSTAI_MODELS": str(models)})
    try:
        messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "  Name a colour.  "}]
        a = httpx.post(s.url + "/apply-template", json={"model": "odd-smollm2", "messages": messages}, timeout=60)
        assert a.status_code == 200, a.text
        assert a.json()["prompt"] == "### SYSTEM:\nBe brief.\n\n### USER:\nName a colour.\n\n### ASSISTANT:\n"
        r = openai.OpenAI(base_url=s.url + "/v1", api_key="x").chat.completions.create(model="odd-smollm2", messages=messages, max_tokens=8, temperature=0)
        assert r.choices[0].message.content is not None and r.usage.completion_tokens >= 1
        # And tools work on it, offered by the generic prompt.
        r = openai.OpenAI(base_url=s.url + "/v1", api_key="x").chat.completions.create(
            model="odd-smollm2", messages=ASK, tools=[WEATHER], tool_choice="required", max_tokens=128, temperature=0
        )
        jsonschema.validate(json.loads(r.choices[0].message.tool_calls[0].function.arguments), CITY)
    finally:
        s.stop()


def test_template_errors_are_400s_naming_the_model(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    raising = "{{ raise_exception('Conversation roles must alternate user/assistant') }}"
    gguf_with_template(os.path.join(os.environ["RUSTAI_MODELS"], "SmolLM2-135M-Instruct.Q4_1.gguf"), models / "strict.gguf", raising)
    s = Server(env={"RUSTAI_MODELS": str(models)})
    try:
        r = httpx.post(s.url + "/v1/chat/completions", json={"model": "strict", "messages": ASK}, timeout=60)
        assert r.status_code == 400, r.text
        msg = r.json()["error"]["message"]
        assert "strict" in msg and "roles must alternate" in msg
    finally:
        s.stop()


def test_ollama_logprobs(server):
    c = ollama.Client(host=server.url)
    r = c.chat(model=MODEL, messages=ASK, logprobs=True, top_logprobs=2, options={"temperature": 0, "num_predict": 4})
    assert r.logprobs and all(len(l.top_logprobs) == 2 and l.logprob <= 0 for l in r.logprobs)
    assert r.logprobs[0].token == r.logprobs[0].top_logprobs[0].token
    parts = list(c.generate(model=MODEL, prompt="The sky is", logprobs=True, stream=True, options={"temperature": 0, "num_predict": 4}))
    assert sum(len(p.logprobs or []) for p in parts) == parts[-1].eval_count
