"""The official `openai` and `ollama` Python clients against a real `rustai serve`
with the real SmolLM2 model, plus HTTP-level checks of the error paths."""
import json
import threading
import time

import httpx
import ollama
import openai
import pytest

MODEL = "smollm2"
QUESTION = "What is the capital of France?"
# SmolLM2's template adds a long default system prompt when there is none, with which the
# 135M model answers poorly; with this one it gives the reference answer.
SYSTEM = "You are a helpful assistant."
ASK = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]


def oai(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused")


def test_openai_lists_models(server):
    ids = [m.id for m in oai(server).models.list().data]
    assert "SmolLM2-135M-Instruct.Q4_1" in ids


def test_openai_chat_non_streaming(server):
    r = oai(server).chat.completions.create(
        model=MODEL, messages=ASK, temperature=0, max_tokens=20
    )
    assert "Paris" in r.choices[0].message.content
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.completion_tokens > 0 and r.usage.prompt_tokens > 0


def test_openai_chat_streaming_with_usage(server):
    stream = oai(server).chat.completions.create(
        model=MODEL,
        messages=ASK,
        temperature=0,
        max_tokens=20,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage, finish = "", None, None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for c in chunk.choices:
            text += c.delta.content or ""
            finish = c.finish_reason or finish
    assert "Paris" in text
    assert finish == "stop"
    assert usage.completion_tokens > 0


def test_openai_completions_and_stop(server):
    r = oai(server).completions.create(model=MODEL, prompt="1, 2, 3, 4,", temperature=0, max_tokens=12, stop=["7"])
    assert r.choices[0].text.strip().startswith("5")
    assert "7" not in r.choices[0].text
    assert r.choices[0].finish_reason == "stop"


def test_openai_seed_is_reproducible_and_json_mode_parses(server):
    client = oai(server)
    ask = dict(model=MODEL, messages=[{"role": "user", "content": "Tell me a story"}], max_tokens=15, seed=42, temperature=0.9)
    a = client.chat.completions.create(**ask).choices[0].message.content
    b = client.chat.completions.create(**ask).choices[0].message.content
    assert a == b
    r = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Give a JSON object with a name"}],
        response_format={
            "type": "json_schema",
            "json_schema": {
                "name": "person",
                "schema": {
                    "type": "object",
                    "properties": {"name": {"type": "string", "maxLength": 20}},
                    "required": ["name"],
                    "additionalProperties": False,
                },
            },
        },
        max_tokens=60,
        temperature=0,
    )
    assert isinstance(json.loads(r.choices[0].message.content)["name"], str)


def test_openai_errors(server):
    with pytest.raises(openai.NotFoundError):
        oai(server).chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.BadRequestError) as e:
        oai(server).embeddings.create(model=MODEL, input="food")
    assert "embedding" in str(e.value)


def cos(a, b):
    return sum(x * y for x, y in zip(a, b))


def test_embeddings_through_both_clients(server):
    # The openai client asks for base64 by default and decodes it.
    r = oai(server).embeddings.create(model="all-MiniLM-L6-v2", input=["food", "bread", "movie"])
    v = [d.embedding for d in r.data]
    assert len(v) == 3 and len(v[0]) == 384
    assert abs(cos(v[0], v[1]) - 0.5555) < 0.01 and abs(cos(v[0], v[2]) - 0.4020) < 0.01
    assert r.usage.prompt_tokens > 0
    e = ollama.Client(host=server.url).embed(model="all-minilm-l6-v2", input=["food", "bread"])
    assert abs(cos(e.embeddings[0], e.embeddings[1]) - 0.5555) < 0.01
    legacy = httpx.post(server.url + "/api/embeddings", json={"model": "all-MiniLM-L6-v2", "prompt": "food"}).json()
    assert abs(cos(legacy["embedding"], v[0]) - 1.0) < 1e-4


FOX = "The quick brown fox jumps over the lazy dog."


def words(text):
    return "".join(c for c in text.lower() if c.isalnum() or c.isspace()).split()


def word_edits(a, b):
    """Levenshtein distance between two word lists."""
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


def test_speech_round_trip_through_the_openai_client(server):
    client = oai(server)
    # OpenAI's model and voice names map to the installed Piper voice.
    speech = client.audio.speech.create(model="tts-1", voice="alloy", input=FOX, response_format="wav")
    wav = speech.read()
    assert wav[:4] == b"RIFF" and len(wav) > 22050
    text = client.audio.transcriptions.create(model="whisper-1", file=("fox.wav", wav, "audio/wav"))
    # Piper samples noise into its voice, so Whisper may mishear one word of nine (as the Rust
    # speech round-trip tests allow); more than that is a failure.
    heard, said = words(text.text), words(FOX)
    assert word_edits(heard, said) <= 1, (heard, said)
    verbose = client.audio.transcriptions.create(model="whisper-1", file=("fox.wav", wav), response_format="verbose_json")
    assert verbose.language == "en" and verbose.segments and verbose.duration > 1
    srt = httpx.post(server.url + "/v1/audio/transcriptions", files={"file": ("fox.wav", wav)}, data={"response_format": "srt"}, timeout=120)
    assert srt.status_code == 200 and srt.text.startswith("1\n00:00:00,000 --> ")
    bad = httpx.post(server.url + "/v1/audio/transcriptions", files={"file": ("x.wav", b"not a wav at all")}, timeout=30)
    assert bad.status_code == 400 and "audio" in bad.json()["error"]["message"]
    mp3 = httpx.post(server.url + "/v1/audio/speech", json={"input": FOX, "response_format": "mp3"})
    assert mp3.status_code == 400


def test_every_family_is_in_ps_and_metrics(own_server):
    """A language model, an embedder, a whisper model and a Piper voice: one pool, one budget;
    /api/ps (through the official client) lists each with its family, /metrics counts each."""
    server = own_server
    client = oai(server)
    client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=2)
    client.embeddings.create(model="all-MiniLM-L6-v2", input="food")
    wav = client.audio.speech.create(model="tts-1", voice="alloy", input=FOX, response_format="wav").read()
    client.audio.transcriptions.create(model="whisper-1", file=("fox.wav", wav, "audio/wav"))
    running = ollama.Client(host=server.url).ps().models
    assert len(running) == 4 and all(m.size > 1 << 20 for m in running), running
    families = sorted(m["family"] for m in httpx.get(server.url + "/api/ps").json()["models"])
    assert families == ["embedding", "llm", "stt", "tts"]
    metrics = httpx.get(server.url + "/metrics").text
    used = server.metric("rustai_memory_budget_used_bytes")
    assert used >= sum(m.size for m in running)
    for m in running:
        name = m.model.split(":")[0]
        assert any(line.startswith("rustai_requests_total{model=") and name in line.lower() for line in metrics.splitlines()), (name, metrics)


def test_ollama_generate_chat_ps_show(own_server):
    server = own_server
    client = ollama.Client(host=server.url)
    r = client.generate(model=MODEL, prompt=QUESTION, system=SYSTEM, options={"temperature": 0, "num_predict": 20})
    assert "Paris" in r.response
    assert r.done and r.eval_count > 0 and r.prompt_eval_count > 0 and r.total_duration > 0

    parts = list(client.chat(model=MODEL, messages=ASK, stream=True, options={"temperature": 0, "num_predict": 20}))
    assert "Paris" in "".join(p.message.content for p in parts)
    assert parts[-1].done and parts[-1].done_reason == "eos"

    names = [m.model for m in client.list().models]
    assert "smollm2-135m-instruct:q4_1" in names
    running = client.ps().models
    assert [m.model for m in running] == ["smollm2-135m-instruct:q4_1"]
    shown = client.show("smollm2-135m-instruct:q4_1")
    assert shown.details.family == "llama" and shown.details.quantization_level == "Q4_1"
    assert shown.modelinfo["llama.context_length"] == 8192
    with pytest.raises(ollama.ResponseError) as e:
        client.chat(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    assert e.value.status_code == 404


def test_ollama_keep_alive_zero_unloads(own_server):
    server = own_server
    client = ollama.Client(host=server.url)
    client.generate(model=MODEL, prompt="Hi", options={"num_predict": 2}, keep_alive=0)
    assert client.ps().models == []
    client.generate(model=MODEL, prompt="")  # load only
    assert len(client.ps().models) == 1


def test_malformed_json_and_unknown_model(server):
    r = httpx.post(server.url + "/api/chat", content=b'{"model": ')
    assert r.status_code == 400 and "malformed JSON" in r.json()["error"]
    r = httpx.post(server.url + "/v1/chat/completions", json={"model": 3})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    r = httpx.post(server.url + "/api/generate", json={"model": "nope", "prompt": "x"})
    assert r.status_code == 404 and "not found" in r.json()["error"]


def test_client_disconnect_cancels_the_generation(server):
    before = server.metric("rustai_requests_cancelled_total")
    body = {"model": MODEL, "prompt": "Write a very long story about a dragon.", "options": {"num_predict": 2000}}
    with httpx.stream("POST", server.url + "/api/generate", json=body, timeout=60) as r:
        for i, _ in enumerate(r.iter_lines()):
            if i == 3:
                break  # hang up after a few tokens
    deadline = time.time() + 20
    while time.time() < deadline and server.metric("rustai_requests_cancelled_total") <= before:
        time.sleep(0.1)
    assert server.metric("rustai_requests_cancelled_total") == before + 1
    assert server.metric("rustai_requests_in_flight") == 0
    # The server keeps serving.
    assert httpx.get(server.url + "/api/version").status_code == 200


def test_api_keys_and_body_limit(keyed_server):
    url = keyed_server.url
    assert httpx.get(url + "/api/tags").status_code == 401
    assert httpx.get(url + "/api/tags", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert httpx.get(url + "/api/tags", headers={"Authorization": "Bearer secret-two"}).status_code == 200
    assert httpx.get(url + "/v1/models", headers={"x-api-key": "secret-one"}).status_code == 200
    r = httpx.get(url + "/v1/models")
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    assert httpx.get(url + "/health").status_code == 200  # open for supervisors
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=url + "/v1", api_key="wrong").models.list()
    assert [m.id for m in openai.OpenAI(base_url=url + "/v1", api_key="secret-one").models.list().data]
    big = {"model": MODEL, "prompt": "x" * 10_000}
    r = httpx.post(url + "/api/generate", json=big, headers={"x-api-key": "secret-one"})
    assert r.status_code == 413 and "limit" in r.json()["error"]


def test_metrics_are_prometheus_text(server):
    httpx.post(server.url + "/api/generate", json={"model": MODEL, "prompt": "Hi", "stream": False, "options": {"num_predict": 2}}, timeout=60)
    text = httpx.get(server.url + "/metrics").text
    assert "# TYPE rustai_request_latency_seconds histogram" in text
    inf = [l for l in text.splitlines() if l.startswith('rustai_request_latency_seconds_bucket{model="SmolLM2-135M-Instruct.Q4_1",le="+Inf"}')]
    count = [l for l in text.splitlines() if l.startswith('rustai_request_latency_seconds_count{model="SmolLM2-135M-Instruct.Q4_1"}')]
    assert inf and count and inf[0].split()[-1] == count[0].split()[-1] and float(count[0].split()[-1]) >= 1
    assert server.metric("rustai_generated_tokens_total") >= 2
    assert 'rustai_http_requests_total{route="/api/generate",status="200"}' in text
    assert server.metric("rustai_loaded_models") >= 1


def test_odd_keep_alive_values_are_errors_or_forever_never_crashes(server):
    for bad in ["inf", "NaN", "soon", [1]]:
        r = httpx.post(server.url + "/api/generate", json={"model": MODEL, "prompt": "", "keep_alive": bad})
        assert r.status_code == 400 and "keep_alive" in r.json()["error"], (bad, r.text)
    for huge in [1e15, "100000000y"]:
        r = httpx.post(server.url + "/api/generate", json={"model": MODEL, "prompt": "Hi", "stream": False, "keep_alive": huge, "options": {"num_predict": 1}})
        assert r.status_code == 200, (huge, r.text)
    assert httpx.get(server.url + "/health").status_code == 200


def test_prompt_cache_is_reported_and_a_long_prompt_is_refused_clearly(server):
    """A conversation resent with one more turn reuses the cached history (OpenAI's
    usage.prompt_tokens_details.cached_tokens, Ollama's prompt_eval_count counts only what
    was evaluated); a prompt over the context is refused with its size, never truncated."""
    client = oai(server)
    history = [{"role": "user", "content": QUESTION}]
    first = client.chat.completions.create(model=MODEL, messages=history, temperature=0, max_tokens=16)
    history += [{"role": "assistant", "content": first.choices[0].message.content},
                {"role": "user", "content": "And of Germany?"}]
    second = client.chat.completions.create(model=MODEL, messages=history, temperature=0, max_tokens=16)
    cached = second.usage.prompt_tokens_details.cached_tokens
    assert cached >= first.usage.prompt_tokens, (cached, first.usage, second.usage)
    assert second.usage.prompt_tokens - cached < 20, second.usage
    # Ollama's client: the same request again evaluates one token (the rest is cached).
    ask = {"model": MODEL, "messages": history, "options": {"temperature": 0, "num_predict": 4}}
    ollama.Client(host=server.url).chat(**ask)
    again = ollama.Client(host=server.url).chat(**ask)
    assert again.prompt_eval_count == 1, again

    long_text = "The quick brown fox jumps over the lazy dog. " * 600
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": long_text}], max_tokens=4)
    assert e.value.code == "context_length_exceeded"
    assert "tokens but the model's context holds 4096" in e.value.message
    with pytest.raises(ollama.ResponseError) as e:
        ollama.Client(host=server.url).generate(model=MODEL, prompt=long_text)
    assert e.value.status_code == 400 and "context holds 4096" in e.value.error
