"""Agents: the tiny embedded model, HFAgent, OpenAIChatAgent (against a local fake server),
the baselines and the ``load_agent`` registry."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import torch
import transformers

from rlvr.agents import (
    SCRIPTED_AGENTS,
    EchoAgent,
    RandomAgent,
    SamplingConfig,
    load_agent,
)
from rlvr.agents.hf import PLAIN_CHAT_TEMPLATE, HFAgent, left_pad, reply_length
from rlvr.agents.http import AgentError, OpenAIChatAgent
from rlvr.agents.tiny import (
    SPECIAL_TOKENS,
    build_tiny_model,
    build_tiny_tokenizer,
    ensure_tiny_model,
)
from rlvr.envs.types import Message

GREEDY = SamplingConfig(temperature=0.0, max_new_tokens=10)
DIALOGUES = [
    [Message("system", "You are a math assistant."), Message("user", "What is 2 + 2?")],
    [Message("user", "héllo 中文 😀 \\boxed{x}")],
    [
        Message("user", "Solve 3x + 5 = 20."),
        Message("assistant", "x = 4"),
        Message("user", "Incorrect, try again, step by step this time."),
    ],
]


# --- tiny model -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny"), seed=0)


@pytest.fixture(scope="session")
def tokenizer(tiny_path: Path) -> Any:
    return transformers.AutoTokenizer.from_pretrained(tiny_path)


@pytest.fixture(scope="session")
def greedy_agent(tiny_path: Path) -> HFAgent:
    return HFAgent(str(tiny_path), sampling=GREEDY, device="cpu", batch_size=2)


@pytest.fixture(scope="session")
def sharp_model(tiny_path: Path) -> Any:
    """The tiny model with its matrices scaled up: a random net whose replies depend on the
    whole context (the plain random init mostly repeats the last token), so padding or
    position bugs change its output."""
    model = transformers.AutoModelForCausalLM.from_pretrained(tiny_path)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() == 2:
                parameter.mul_(20.0)
    return model.eval()


def test_tiny_model_reloads_through_auto_classes(tiny_path: Path, tokenizer: Any) -> None:
    model = transformers.AutoModelForCausalLM.from_pretrained(tiny_path)
    assert model.config.model_type == "llama"
    assert model.config.vocab_size == len(tokenizer)
    assert sum(p.numel() for p in model.parameters()) < 500_000
    assert [tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
    assert (tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id) == (0, 1, 4)
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False
    )
    assert text == "<|bos|><|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_tiny_model_is_deterministic_per_seed(tiny_path: Path, tmp_path: Path) -> None:
    again = build_tiny_model(tmp_path / "same", seed=0)
    other = build_tiny_model(tmp_path / "other", seed=1)
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert (again / name).read_bytes() == (tiny_path / name).read_bytes()
    assert (other / "model.safetensors").read_bytes() != (
        tiny_path / "model.safetensors"
    ).read_bytes()


@pytest.mark.parametrize(
    "text",
    ["héllo 中文 😀 \\boxed{x}", "  two  spaces\tand\nnewlines ", "\x00\x7f\u200b𝔘𝔫𝔦", ""],
)
def test_tokenizer_round_trips_unicode(tokenizer: Any, text: str) -> None:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == text


def test_ensure_tiny_model_builds_once(tmp_path: Path) -> None:
    path = ensure_tiny_model(tmp_path)
    stamp = (path / "model.safetensors").stat().st_mtime_ns
    assert ensure_tiny_model(tmp_path) == path
    assert (path / "model.safetensors").stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no staging dir left


def test_tokenizer_corpus_learns_names_and_keys_the_cache(tmp_path: Path) -> None:
    names = ["Kathleen Johnson lives in South Nicolasmouth."] * 50
    plain = build_tiny_tokenizer(1024)
    learned = build_tiny_tokenizer(1024, names)
    text = "Kathleen Johnson -> South Nicolasmouth"
    assert len(learned(text)["input_ids"]) <= 8 < len(plain(text)["input_ids"])
    assert learned.decode(learned(text)["input_ids"]) == text
    assert learned.get_vocab() == build_tiny_tokenizer(1024, names).get_vocab()  # deterministic
    with_names = ensure_tiny_model(tmp_path, corpus=names, vocab_size=1024)
    assert ensure_tiny_model(tmp_path, corpus=names, vocab_size=1024) == with_names
    assert ensure_tiny_model(tmp_path, corpus=names[:1], vocab_size=1024) != with_names
    assert ensure_tiny_model(tmp_path, vocab_size=1024) != with_names
    loaded = transformers.AutoTokenizer.from_pretrained(with_names)
    assert loaded(text)["input_ids"] == learned(text)["input_ids"]


# --- HFAgent --------------------------------------------------------------------------------


def test_left_pad_and_reply_length() -> None:
    ids, mask = left_pad([[5, 6, 7], [8]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    assert reply_length([9, 9, 4, 0, 0], frozenset({4})) == 3
    assert reply_length([9, 9, 9], frozenset({4})) == 3


def test_hf_agent_acts_and_counts_tokens(greedy_agent: HFAgent) -> None:
    before = greedy_agent.tokens_used
    reply = greedy_agent.act(DIALOGUES[0])
    assert isinstance(reply, str)
    used = greedy_agent.tokens_used - before
    assert 1 <= used <= GREEDY.max_new_tokens
    assert greedy_agent.name == f"hf:{greedy_agent.model.name_or_path}"


def test_hf_agent_applies_chat_template(greedy_agent: HFAgent, tokenizer: Any) -> None:
    ids = greedy_agent.encode(DIALOGUES[0])
    im_start, im_end = tokenizer.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>"])
    assert ids[0] == tokenizer.bos_token_id
    assert ids.count(im_start) == 3  # system, user, and the generation prompt
    assert ids.count(im_end) == 2
    assert tokenizer.decode(ids).endswith("<|im_start|>assistant\n")


def test_greedy_batch_equals_one_by_one(greedy_agent: HFAgent, sharp_model: Any) -> None:
    sharp = HFAgent.from_model(sharp_model, greedy_agent.tokenizer, sampling=GREEDY, batch_size=2)
    for agent in (greedy_agent, sharp):
        one_by_one = [agent.act(dialogue) for dialogue in DIALOGUES]
        assert agent.act_batch(DIALOGUES) == one_by_one
    assert len(set(one_by_one)) == len(DIALOGUES)  # the sharp model's replies differ


def test_same_seed_gives_same_samples(sharp_model: Any, tokenizer: Any) -> None:
    def agent(seed: int) -> HFAgent:
        config = SamplingConfig(temperature=1.0, top_p=0.95, max_new_tokens=10, seed=seed)
        return HFAgent.from_model(sharp_model, tokenizer, sampling=config)

    first, second, other = agent(7), agent(7), agent(8)
    rng_state = torch.get_rng_state()
    replies = [first.act(DIALOGUES[0]), first.act_batch(DIALOGUES)]
    assert [second.act(DIALOGUES[0]), second.act_batch(DIALOGUES)] == replies
    assert other.act(DIALOGUES[0]) != replies[0]
    assert first.act(DIALOGUES[0]) != replies[0]  # the next call draws a fresh sample
    assert torch.equal(torch.get_rng_state(), rng_state)  # the global RNG is left alone


def test_from_model_restores_training_mode(sharp_model: Any, tokenizer: Any) -> None:
    sharp_model.train()
    try:
        HFAgent.from_model(sharp_model, tokenizer, sampling=GREEDY).act(DIALOGUES[0])
        assert sharp_model.training
    finally:
        sharp_model.eval()


def test_tokenizer_without_pad_or_template(sharp_model: Any, tiny_path: Path) -> None:
    bare = transformers.AutoTokenizer.from_pretrained(tiny_path)
    bare.pad_token = None
    bare.chat_template = None
    with pytest.raises(ValueError, match="no chat template"):
        HFAgent.from_model(sharp_model, bare)
    agent = HFAgent.from_model(
        sharp_model, bare, sampling=GREEDY, chat_template=PLAIN_CHAT_TEMPLATE
    )
    assert agent.pad_id == bare.eos_token_id
    assert agent.act_batch(DIALOGUES[:2]) == [agent.act(d) for d in DIALOGUES[:2]]
    assert bare.decode(agent.encode(DIALOGUES[0])).endswith("User: What is 2 + 2?\n\nAssistant:")


# --- OpenAIChatAgent against a local fake server ---------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a handler still sleeping must not block shutdown

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.script: list[tuple[int, Any]] = []
        """(status, body) answers to give first, in order; then canned completions."""
        self.delay = 0.0
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (the timeout tests) breaks the pipe of a sleeping handler;
        that is expected here and must not print a traceback into other tests' stderr."""


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def _reply(self, status: int, body: Any) -> None:
        raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        if status == 429:
            self.send_header("Retry-After", "0")
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self) -> None:
        if self.path == "/v1/models":
            self._reply(200, {"object": "list", "data": [{"id": "served-model"}]})
        else:
            self._reply(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.server.lock:
            self.server.requests.append((dict(self.headers), body))
            scripted = self.server.script.pop(0) if self.server.script else None
        content = body["messages"][-1]["content"]
        # Dialogues ending in a higher digit are answered sooner (see the batch-order test).
        digit = int(content[-1]) if content[-1:].isdigit() else 9
        time.sleep(self.server.delay or 0.003 * (9 - digit))
        if self.path != "/v1/chat/completions":
            self._reply(404, {"error": {"message": f"no route {self.path}"}})
        elif scripted is not None:
            self._reply(*scripted)
        else:
            completion = {"role": "assistant", "content": f"echo: {content}"}
            usage = {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
            self._reply(200, {"choices": [{"index": 0, "message": completion}], "usage": usage})


@pytest.fixture
def server() -> Iterator[_Server]:
    server = _Server()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _chat(server: _Server, **kwargs: Any) -> OpenAIChatAgent:
    kwargs.setdefault("backoff", 0.01)
    return OpenAIChatAgent(server.url, kwargs.pop("model", "m"), **kwargs)


def test_http_agent_sends_openai_request(server: _Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    config = SamplingConfig(temperature=0.7, top_p=0.9, max_new_tokens=33, seed=5)
    agent = _chat(server, sampling=config)
    assert agent.act(DIALOGUES[0]) == "echo: What is 2 + 2?"
    assert agent.act(DIALOGUES[1]) == "echo: héllo 中文 😀 \\boxed{x}"
    headers, body = server.requests[0]
    assert headers["Authorization"] == "Bearer sk-test"
    assert body == {
        "model": "m",
        "messages": [m.as_dict() for m in DIALOGUES[0]],
        "temperature": 0.7,
        "top_p": 0.9,
        "max_tokens": 33,
        "seed": 5,
    }
    assert server.requests[1][1]["seed"] == 6  # request i gets seed + i
    assert agent.tokens_used == 6


def test_http_agent_asks_server_for_model(server: _Server) -> None:
    agent = _chat(server, model=None, api_key="")
    agent.act(DIALOGUES[0])
    headers, body = server.requests[0]
    assert body["model"] == agent.model == "served-model"
    assert "Authorization" not in headers and "seed" not in body


def test_http_batch_preserves_order(server: _Server) -> None:
    # Later dialogues are answered faster, so responses arrive out of order.
    dialogues = [[Message("user", f"question {i}")] for i in range(10)]
    replies = _chat(server, concurrency=5).act_batch(dialogues)
    assert replies == [f"echo: question {i}" for i in range(10)]
    assert len(server.requests) == 10


@pytest.mark.parametrize("status", [500, 503, 429])
def test_http_retries_transient_errors(server: _Server, status: int) -> None:
    server.script = [(status, {"error": {"message": "busy"}}), (status, "oops")]
    assert _chat(server, retries=2).act(DIALOGUES[0]) == "echo: What is 2 + 2?"
    assert len(server.requests) == 3


def test_http_gives_up_after_retries(server: _Server) -> None:
    server.script = [(500, {"message": "engine dead"})] * 3
    with pytest.raises(AgentError, match="engine dead") as caught:
        _chat(server, retries=2).act(DIALOGUES[0])
    assert caught.value.status == 500
    assert len(server.requests) == 3


def test_http_client_error_fails_at_once(server: _Server) -> None:
    server.script = [(400, {"error": {"message": "max_tokens is too large"}})]
    with pytest.raises(AgentError) as caught:
        _chat(server, retries=3).act(DIALOGUES[0])
    assert caught.value.status == 400
    assert caught.value.message == "max_tokens is too large"
    assert "HTTP 400" in str(caught.value)
    assert len(server.requests) == 1


def test_http_timeout_raises_quickly(server: _Server) -> None:
    server.delay = 3.0
    start = time.monotonic()
    with pytest.raises(AgentError) as caught:
        _chat(server, timeout=0.2, retries=1).act(DIALOGUES[0])
    assert time.monotonic() - start < 2.5  # the server would take 3 s per attempt
    assert caught.value.status is None
    assert "timed out" in caught.value.message


def test_http_connection_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    agent = OpenAIChatAgent(f"http://127.0.0.1:{port}/v1", "m", retries=1, backoff=0.01)
    with pytest.raises(AgentError) as caught:
        agent.act(DIALOGUES[0])
    assert caught.value.status is None


# --- baselines and load_agent ----------------------------------------------------------------


def test_random_agent_is_seeded() -> None:
    replies = [RandomAgent(seed=3).act(DIALOGUES[0]) for _ in range(2)]
    assert replies[0] == replies[1]
    agent = RandomAgent(seed=3)
    stream = [agent.act(DIALOGUES[0]) for _ in range(20)]
    assert len(set(stream)) > 10
    assert any("\\boxed{" in reply for reply in stream)


def test_echo_agent_repeats_last_message() -> None:
    assert EchoAgent().act(DIALOGUES[2]) == DIALOGUES[2][-1].content
    assert EchoAgent().act([Message("system", "s")]) == ""


def test_load_agent_baselines_and_entry_points() -> None:
    agent = load_agent("random", sampling=SamplingConfig(seed=11))
    assert isinstance(agent, RandomAgent)
    assert agent.act(DIALOGUES[0]) == RandomAgent(seed=11).act(DIALOGUES[0])
    assert isinstance(load_agent("echo"), EchoAgent)
    assert isinstance(load_agent("rlvr.agents.baseline:EchoAgent"), EchoAgent)
    with pytest.raises(TypeError, match="not an rlvr Agent"):
        load_agent("builtins:dict")


def test_load_agent_scripted(monkeypatch: pytest.MonkeyPatch) -> None:
    assert SCRIPTED_AGENTS["rlvr/Math-v0"] == "rlvr.agents.scripted.math:MathSolver"
    monkeypatch.setitem(SCRIPTED_AGENTS, "rlvr/Fake-v0", "rlvr.agents.baseline:EchoAgent")
    assert isinstance(load_agent("scripted", env_id="rlvr/Fake-v0"), EchoAgent)
    with pytest.raises(ValueError, match="needs env_id"):
        load_agent("scripted")
    with pytest.raises(ValueError, match="no scripted solver"):
        load_agent("scripted", env_id="rlvr/Nope-v0")


def test_load_agent_math_solver() -> None:
    from rlvr.agents.scripted.math import MathSolver

    assert isinstance(load_agent("scripted", env_id="rlvr/Math-v0"), MathSolver)


def test_load_agent_model_backed(tiny_path: Path, tmp_path: Path) -> None:
    for spec in (f"hf:{tiny_path}", str(tiny_path)):
        agent = load_agent(spec, sampling=GREEDY, device="cpu")
        assert isinstance(agent, HFAgent) and agent.sampling == GREEDY
    tiny = load_agent("tiny", sampling=GREEDY, cache_dir=tmp_path, device="cpu")
    assert isinstance(tiny, HFAgent) and isinstance(tiny.act(DIALOGUES[0]), str)
    http = load_agent("http://localhost:8000/v1/#Qwen/Qwen3-8B", timeout=5.0)
    assert isinstance(http, OpenAIChatAgent)
    assert (http.base_url, http.model, http.timeout) == (
        "http://localhost:8000/v1",
        "Qwen/Qwen3-8B",
        5.0,
    )
    assert load_agent("https://api.example.com/v1").model is None


@pytest.mark.parametrize("spec", ["nope", "", "hf:", "/no/such/dir", "gpt-4o"])
def test_load_agent_unknown_spec(spec: str) -> None:
    with pytest.raises(ValueError, match="unknown agent") as caught:
        load_agent(spec)
    message = str(caught.value)
    assert "\n" not in message and "hf:PATH_OR_ID" in message and "http" in message


def test_registry_does_not_import_torch() -> None:
    code = (
        "import sys, rlvr.agents as a; a.load_agent('random'); a.load_agent('echo'); "
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
