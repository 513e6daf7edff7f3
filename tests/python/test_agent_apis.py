"""The official `anthropic` client (Messages API) and the `openai` client's Responses API
against a real `rustai serve` with the real SmolLM2 model. The model is tiny: these
check the wire shapes and the tool-call plumbing, not the wording of its answers."""
import json

import anthropic
import httpx
import openai
import pytest

MODEL = "smollm2"
QUESTION = "What is the capital of France?"
WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string", "maxLength": 30}},
    "required": ["city"],
    "additionalProperties": False,
}


# This `anthropic` release has no `temperature` argument: older clients send it in the body.
GREEDY = {"extra_body": {"temperature": 0}}


def claude(server, key="unused"):
    return anthropic.Anthropic(base_url=server.url, api_key=key, max_retries=0)


def oai(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def city_of(arguments):
    assert set(arguments) == {"city"}, arguments
    assert isinstance(arguments["city"], str)
    return arguments["city"]


# --- Anthropic Messages API -------------------------------------------------------------


def test_anthropic_message(server):
    r = claude(server).messages.create(
        model=MODEL, max_tokens=32, system="Answer briefly.", messages=[{"role": "user", "content": QUESTION}], **GREEDY
    )
    assert r.id.startswith("msg_") and r.type == "message" and r.role == "assistant"
    assert [b.type for b in r.content] == ["text"] and r.content[0].text.strip()
    assert r.stop_reason in ("end_turn", "max_tokens")
    assert r.usage.input_tokens > 0 and 0 < r.usage.output_tokens <= 32
    cut = claude(server).messages.create(model=MODEL, max_tokens=3, messages=[{"role": "user", "content": "Tell me a long story"}])
    assert cut.stop_reason == "max_tokens" and cut.usage.output_tokens == 3


def test_anthropic_stream(server):
    with claude(server).messages.stream(
        model=MODEL, max_tokens=32, messages=[{"role": "user", "content": [{"type": "text", "text": QUESTION}]}], **GREEDY
    ) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) > 1
    assert final.content[0].type == "text" and final.content[0].text == "".join(pieces)
    assert final.stop_reason in ("end_turn", "max_tokens")
    assert final.usage.input_tokens > 0 and final.usage.output_tokens > 0


def test_anthropic_tool_use_and_result(server):
    client = claude(server)
    tools = [{"name": "get_weather", "description": "The weather in a city", "input_schema": WEATHER_SCHEMA}]
    ask = [{"role": "user", "content": "What is the weather in Paris?"}]
    # One call (parallel calls are allowed by default, and slow under the grammar with this model).
    any_one = {"type": "any", "disable_parallel_tool_use": True}
    r = client.messages.create(model=MODEL, max_tokens=64, tools=tools, tool_choice=any_one, messages=ask, **GREEDY)
    assert r.stop_reason == "tool_use", r
    uses = [b for b in r.content if b.type == "tool_use"]
    assert uses and uses[0].name == "get_weather" and uses[0].id
    city_of(uses[0].input)
    # The result goes back in a user turn; the model answers in text.
    follow = ask + [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in r.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": uses[0].id, "content": "Sunny, 24 C"}]},
    ]
    answer = client.messages.create(model=MODEL, max_tokens=32, tools=tools, tool_choice={"type": "none"}, messages=follow, **GREEDY)
    assert answer.content[0].type == "text" and answer.stop_reason in ("end_turn", "max_tokens")


def test_anthropic_streamed_tool_use(server):
    tools = [{"name": "get_weather", "description": "The weather in a city", "input_schema": WEATHER_SCHEMA}]
    with claude(server).messages.stream(
        model=MODEL,
        max_tokens=64,
        tools=tools,
        tool_choice={"type": "tool", "name": "get_weather"},
        messages=[{"role": "user", "content": "Weather in Rome?"}],
        **GREEDY,
    ) as stream:
        kinds = [e.type for e in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert "input_json" in kinds  # the SDK's event for input_json_delta
    assert final.stop_reason == "tool_use"
    use = next(b for b in final.content if b.type == "tool_use")
    city_of(use.input)


def test_anthropic_structured_output(server):
    schema = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 20}}, "required": ["name"], "additionalProperties": False}
    r = claude(server).messages.create(
        model=MODEL,
        max_tokens=48,
        messages=[{"role": "user", "content": "Give a JSON object with a name"}],
        output_config={"format": {"type": "json_schema", "schema": schema}},
        **GREEDY,
    )
    assert isinstance(json.loads(r.content[0].text)["name"], str)


def test_anthropic_count_tokens(server):
    client = claude(server)
    messages = [{"role": "user", "content": QUESTION}]
    plain = client.messages.count_tokens(model=MODEL, messages=messages).input_tokens
    tools = [{"name": "get_weather", "description": "The weather in a city", "input_schema": WEATHER_SCHEMA}]
    with_tools = client.messages.count_tokens(model=MODEL, messages=messages, tools=tools).input_tokens
    assert 0 < plain < with_tools
    # The same prompt costs what a generation reports.
    r = client.messages.create(model=MODEL, max_tokens=1, messages=messages)
    assert r.usage.input_tokens + (r.usage.cache_read_input_tokens or 0) == plain


def test_anthropic_errors(server, keyed_server):
    client = claude(server)
    with pytest.raises(anthropic.NotFoundError):
        client.messages.create(model="no-such-model", max_tokens=8, messages=[{"role": "user", "content": "hi"}])
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}
    with pytest.raises(anthropic.BadRequestError) as e:
        client.messages.create(model=MODEL, max_tokens=8, messages=[{"role": "user", "content": [image]}])
    assert "image" in str(e.value)
    r = httpx.post(server.url + "/v1/messages", json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 400
    assert r.json()["type"] == "error" and r.json()["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in r.json()["error"]["message"]
    r = httpx.post(server.url + "/v1/messages", content=b"{not json")
    assert r.status_code == 400 and r.json()["type"] == "error"
    # Keys come in `x-api-key`, as Anthropic clients send them.
    with pytest.raises(anthropic.AuthenticationError):
        claude(keyed_server, "wrong").messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    ok = claude(keyed_server, "secret-one").messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert ok.input_tokens > 0


# --- OpenAI Responses API ---------------------------------------------------------------


def test_responses_plain(server):
    r = oai(server).responses.create(
        model=MODEL, input=QUESTION, instructions="Answer briefly.", max_output_tokens=32, temperature=0
    )
    assert r.id.startswith("resp_") and r.object == "response"
    assert r.status in ("completed", "incomplete")
    assert r.output[0].type == "message" and r.output[0].content[0].type == "output_text"
    assert r.output_text.strip()
    assert r.usage.input_tokens > 0 and 0 < r.usage.output_tokens <= 32
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens
    cut = oai(server).responses.create(model=MODEL, input="Tell me a long story", max_output_tokens=3)
    schema = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 20}}, "required": ["name"], "additionalProperties": False}
    shaped = oai(server).responses.create(
        model=MODEL, input="Give a JSON object with a name", max_output_tokens=48, temperature=0,
        text={"format": {"type": "json_schema", "name": "person", "schema": schema}},
    )
    assert isinstance(json.loads(shaped.output_text)["name"], str)
    assert cut.status == "incomplete" and cut.incomplete_details.reason == "max_output_tokens"
    assert oai(server).responses.retrieve(r.id).output_text == r.output_text


def test_responses_stream(server):
    stream = oai(server).responses.create(
        model=MODEL, input=[{"role": "user", "content": QUESTION}], max_output_tokens=32, temperature=0, stream=True
    )
    events = list(stream)
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] in ("response.completed", "response.incomplete")
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    done = next(e for e in events if e.type == "response.output_text.done")
    final = events[-1].response
    assert deltas and deltas == done.text == final.output_text
    assert final.usage.output_tokens > 0


def test_responses_function_call_and_follow_up(server):
    client = oai(server)
    tools = [{"type": "function", "name": "get_weather", "description": "The weather in a city", "parameters": WEATHER_SCHEMA}]
    r = client.responses.create(
        model=MODEL,
        input="What is the weather in Paris?",
        tools=tools,
        tool_choice="required",
        parallel_tool_calls=False,
        max_output_tokens=64,
        temperature=0,
    )
    calls = [o for o in r.output if o.type == "function_call"]
    assert calls, r.output
    assert calls[0].name == "get_weather" and calls[0].call_id and calls[0].id.startswith("fc_")
    city_of(json.loads(calls[0].arguments))
    # Continue from the stored response: only the tool's output is sent.
    follow = client.responses.create(
        model=MODEL,
        previous_response_id=r.id,
        input=[{"type": "function_call_output", "call_id": calls[0].call_id, "output": "Sunny, 24 C"}],
        tools=tools,
        max_output_tokens=32,
        temperature=0,
    )
    assert follow.previous_response_id == r.id
    assert follow.output[0].type in ("message", "function_call")
    assert follow.usage.input_tokens > r.usage.input_tokens  # the earlier turns were in the prompt


def test_responses_streamed_function_call(server):
    tools = [{"type": "function", "name": "get_weather", "parameters": WEATHER_SCHEMA}]
    events = list(
        oai(server).responses.create(
            model=MODEL,
            input="Weather in Rome?",
            tools=tools,
            tool_choice={"type": "function", "name": "get_weather"},
            max_output_tokens=64,
            temperature=0,
            stream=True,
        )
    )
    done = next(e for e in events if e.type == "response.function_call_arguments.done")
    city_of(json.loads(done.arguments))
    final = events[-1].response
    assert events[-1].type == "response.completed"
    assert [o.type for o in final.output] == ["function_call"] and final.output[0].arguments == done.arguments


def test_responses_errors_and_store(server):
    client = oai(server)
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model=MODEL, input="hi", previous_response_id="resp_nope", max_output_tokens=16)
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model=MODEL, input="hi", tools=[{"type": "web_search"}], max_output_tokens=16)
    assert "web_search" in str(e.value)
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model=MODEL, input=[{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}])
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="no-such-model", input="hi")
    unkept = client.responses.create(model=MODEL, input="hi", store=False, max_output_tokens=4)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unkept.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model=MODEL, input="and?", previous_response_id=unkept.id, max_output_tokens=4)
