"""Rollouts sampled on an OpenAI-compatible completions server, with weight push after updates.

The server is a stub (standard-library ``http.server`` in a thread) that runs the tiny model:
``/v1/completions`` samples from ``softmax(logits / T)`` with the request's seed and reports the
sampled ids as ``"token_id:N"`` with their log-probs (vLLM's ``return_tokens_as_token_ids``),
and ``/update_weights_from_disk`` reloads the weights from ``model_path`` and counts reloads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest
import torch
from conftest import SMALL

import rlvr
from rlvr.training.config import ConfigError, ModelConfig, TinyModelConfig, load_config
from rlvr.training.generation import SamplingSettings
from rlvr.training.policy import Policy, load_policy, resolve_model_source, sequence_logprobs
from rlvr.training.remote_generation import (
    CompletionsBackend,
    CompletionsSampler,
    DiskWeightPush,
    ServerClient,
    ServerError,
    completions_backend,
    no_weight_sync,
    parse_choice,
)
from rlvr.training.rollout import EnvPool, GroupSpec, RolloutCollector, RolloutLimits

gym.register_envs(rlvr)

pytestmark = pytest.mark.usefixtures("tiny_cache")


class StubServer:
    """A completions server running a ``transformers`` model (no KV cache: tiny model)."""

    def __init__(self, source: str):
        from transformers import AutoModelForCausalLM

        self.model = AutoModelForCausalLM.from_pretrained(source).eval()
        self.lock = threading.Lock()
        self.reloads = 0
        self.requests: list[dict[str, Any]] = []
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    @torch.no_grad()
    def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        ids = list(body["prompt"])
        stops = set(body.get("stop_token_ids") or [])
        generator = torch.Generator().manual_seed(int(body["seed"]))
        tokens, logps, reason = [], [], "length"
        with self.lock:
            for _ in range(int(body["max_tokens"])):
                logits = self.model(input_ids=torch.tensor([ids])).logits[0, -1].float()
                logp = torch.log_softmax(logits / float(body["temperature"]), dim=-1)
                token = int(torch.multinomial(logp.exp(), 1, generator=generator))
                ids.append(token)
                tokens.append(f"token_id:{token}")
                logps.append(float(logp[token]))
                if token in stops:
                    reason = "stop"
                    break
        logprobs = {"tokens": tokens, "token_logprobs": logps, "top_logprobs": None}
        return {"choices": [{"index": 0, "finish_reason": reason, "logprobs": logprobs}]}

    def reload(self, body: dict[str, Any]) -> dict[str, Any]:
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(body["model_path"]).eval()
        with self.lock:
            self.model = model
            self.reloads += 1
        return {"success": True}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.requests.append(body)
                if self.path == "/v1/completions":
                    status, answer = 200, stub.complete(body)
                elif self.path == "/update_weights_from_disk":
                    status, answer = 200, stub.reload(body)
                else:
                    status, answer = 404, {"error": {"message": f"no route {self.path}"}}
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


@pytest.fixture(scope="module")
def source() -> str:
    return resolve_model_source(ModelConfig(tiny=TinyModelConfig(**SMALL)))


@pytest.fixture(scope="module")
def policy(source: str) -> Policy:
    return load_policy(ModelConfig(tiny=TinyModelConfig(**SMALL)), device="cpu")


@pytest.fixture
def stub(source: str) -> Iterator[StubServer]:
    server = StubServer(source)
    yield server
    server.close()


def test_sampled_ids_and_logprobs_round_trip_into_rollouts(
    policy: Policy, stub: StubServer
) -> None:
    collector = RolloutCollector(
        policy,
        EnvPool({"rlvr/Math-v0": {"max_turns": 2, "difficulty": 0}}),
        limits=RolloutLimits(max_new_tokens=6, max_total_tokens=400, max_turns=2),
        sampling=SamplingSettings(temperature=0.9),
        env_workers=2,
        sampler_factory=CompletionsBackend(ServerClient(stub.url), "tiny"),
    )
    groups = collector.collect(
        [GroupSpec("rlvr/Math-v0", s, 0, 2) for s in (5, 6)], torch.Generator().manual_seed(3)
    )
    collector.close()
    rollouts = [r for g in groups for r in g.rollouts]
    assert len(rollouts) == 4 and all(r.turns == 2 for r in rollouts)
    completions = [b for b in stub.requests if "prompt" in b]
    assert len(completions) == 8  # 4 episodes x 2 turns, one request each
    first = completions[0]
    assert first["model"] == "tiny" and first["return_tokens_as_token_ids"] is True
    assert first["stop_token_ids"] == sorted(policy.stop_ids) and first["max_tokens"] == 6
    assert len({b["seed"] for b in completions[:4]}) == 4  # a group's rows differ in seed
    for rollout in rollouts:
        # the second turn's prompt is the whole sequence so far, sampled ids included
        assert any(list(rollout.ids[: len(b["prompt"])]) == b["prompt"] for b in completions)
        ids = torch.tensor([rollout.ids])
        logp, _ = sequence_logprobs(policy.model, ids, torch.ones_like(ids), 0.9, entropy=False)
        mask = torch.tensor(rollout.policy_mask[1:], dtype=torch.bool)
        recorded = torch.tensor(rollout.old_logprobs[1:])
        assert int(mask.sum()) == rollout.completion_tokens > 0
        assert torch.allclose(logp[0][mask], recorded[mask], atol=1e-4)


def test_parse_choice_reads_vllm_token_ids_and_checks_the_stop() -> None:
    choice = {
        "finish_reason": "stop",
        "logprobs": {"tokens": ["token_id:7", "token_id:2"], "token_logprobs": [-0.5, -1.25]},
    }
    turn = parse_choice(choice, frozenset({2}))
    assert turn.ids == (7, 2) and turn.logprobs == (-0.5, -1.25) and turn.ended
    cut = parse_choice({**choice, "finish_reason": "length"}, frozenset({2}))
    assert not cut.ended
    with pytest.raises(ServerError, match="stopped on id 2, which is not a stop id"):
        parse_choice(choice, frozenset({3}))
    with pytest.raises(ServerError, match="no logprobs"):
        parse_choice({"finish_reason": "length", "logprobs": None}, frozenset())


def test_a_server_that_is_down_fails_in_one_line() -> None:
    client = ServerClient("http://127.0.0.1:9/v1", retries=1, backoff=0.01, timeout=2)
    sampler = CompletionsSampler(
        client,
        model=None,
        rows=1,
        stop_ids=[2],
        pad_id=0,
        settings=SamplingSettings(),
        generator=torch.Generator(),
    )
    sampler.extend(0, [1, 5, 6])
    with pytest.raises(ServerError) as caught:
        sampler.sample_turn([4])
    message = str(caught.value)
    assert message.startswith("POST http://127.0.0.1:9/v1/completions failed after 2 attempts")
    assert "Connection" in message and "\n" not in message


def test_http_errors_carry_the_server_message(stub: StubServer, tmp_path: Path) -> None:
    push = DiskWeightPush(ServerClient(stub.url, retries=0), "/reload", str(tmp_path), "m")
    with pytest.raises(ServerError, match=r"/reload failed: HTTP 404: no route /reload$"):
        push.client.post(push.reload_path, push.body())
    lora = DiskWeightPush(ServerClient(stub.url), "/v1/load_lora_adapter", str(tmp_path), "m")
    assert lora.body() == {"lora_name": "m", "lora_path": str(tmp_path), "load_inplace": True}


def _scenario(tmp_path: Path, sft_steps: int = 0, **rollout: Any) -> Path:
    data = {
        "model": {"name": "tiny", "tiny": SMALL},
        "envs": [{"id": "rlvr/Math-v0", "difficulty": 0, "kwargs": {"families": ["arithmetic"]}}],
        "rollout": {
            "group_size": 2,
            "prompts_per_step": 2,
            "max_new_tokens": 6,
            "max_total_tokens": 160,
            **rollout,
        },
        "algorithm": {"lr": 0.01, "weight_decay": 0.5},  # decay moves even zero-reward runs
        "sft": {"steps": sft_steps, "episodes": 8, "batch_size": 4},
        "eval": {"episodes": 0},
        "run": {"steps": 2, "progress": False, "plots": False, "tensorboard": False},
    }
    path = tmp_path / "scenario.yaml"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("rollout", "message"),
    [
        ({"backend": "openai"}, "rollout: backend openai needs server_url"),
        ({"server_reload_path": "/r"}, "rollout: server_reload_path needs server_weights_dir"),
        (
            {"server_reload_path": "/v1/load_lora_adapter", "server_weights_dir": "w"},
            "rollout: a load_lora_adapter push needs server_model",
        ),
        (
            {
                "server_reload_path": "/v1/load_lora_adapter",
                "server_weights_dir": "w",
                "server_model": "policy",
            },
            "LoRA runs push adapters",
        ),
    ],
)
def test_server_settings_are_validated(
    tmp_path: Path, rollout: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(_scenario(tmp_path, **rollout))
    assert message in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(("sft_steps", "pushes"), [(0, 2), (2, 3)])
def test_rlvr_train_samples_on_the_server_and_pushes_each_update(
    stub: StubServer, tmp_path: Path, sft_steps: int, pushes: int
) -> None:
    """One push after each update, plus one at the start when a warm-up changed the weights."""
    weights = tmp_path / "pushed"
    scenario = _scenario(
        tmp_path,
        sft_steps,
        backend="openai",
        server_url=stub.url + "/v1",
        server_reload_path="/update_weights_from_disk",
        server_weights_dir=str(weights),
    )
    result = subprocess.run(
        [sys.executable, "-m", "rlvr", "train", str(scenario), f"run.output_dir={tmp_path / 'r'}"],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "RLVR_DEBUG": ""},
    )
    assert result.returncode == 0, result.stderr
    assert stub.reloads == pushes
    reloads = [b for b in stub.requests if "model_path" in b]
    assert [b["model_path"] for b in reloads] == [str(weights.resolve())] * pushes
    assert sum(1 for b in stub.requests if "prompt" in b) >= 2 * 4  # 2 steps x 4 episodes
    from transformers import AutoModelForCausalLM

    trained = AutoModelForCausalLM.from_pretrained(tmp_path / "r/checkpoints/step-000002/model")
    served, final = stub.model.state_dict(), trained.state_dict()
    assert served.keys() == final.keys()
    assert all(torch.equal(served[k], final[k]) for k in final)
    initial = AutoModelForCausalLM.from_pretrained(resolve_model_source(_tiny())).state_dict()
    assert not all(torch.equal(initial[k], final[k]) for k in final)  # the updates moved it


def _tiny() -> ModelConfig:
    return ModelConfig(tiny=TinyModelConfig(**SMALL))


def test_no_reload_path_warns_once_that_weights_go_stale(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="rlvr.training.remote_generation"):
        factory, sync = completions_backend(
            "http://127.0.0.1:9", model=None, reload_path=None, weights_dir=None
        )
    assert sync is no_weight_sync and isinstance(factory, CompletionsBackend)
    assert [r.message for r in caplog.records if "stale weights" in r.message] != []
    assert len(caplog.records) == 1
