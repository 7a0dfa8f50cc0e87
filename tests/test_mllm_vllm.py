"""The vLLM backend's options reach vLLM as vLLM expects them, without vLLM installed (a fake ``vllm`` module).

What is checked is the plumbing: engine arguments (tensor parallelism, memory share, pixel budget), the GPUs
each process of a launch hands its engine, and the sampling parameters built from the same decoding settings as
the transformers backend. Whether vLLM then generates well on GPUs is not checked here (see docs/mllm.md).
"""

from __future__ import annotations

import os
import sys
import types

import pytest
from PIL import Image

from iqabench import create_model
from iqabench.errors import IQABenchError

ANSWER = '<think>sharp and clean</think><answer>{"rating": 3.5}</answer>'


class FakeSamplingParams:
    """Records its arguments; defaults as vLLM's (repetition_penalty 1.0)."""

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.repetition_penalty = kwargs.get("repetition_penalty", 1.0)


class FakeLLM:
    """Records the engine arguments and the GPUs visible when the engine starts; answers every prompt alike."""

    engines: list[FakeLLM] = []
    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.visible_gpus = os.environ.get("CUDA_VISIBLE_DEVICES")
        self.calls = []
        FakeLLM.engines.append(self)

    def generate(self, prompts, params, use_tqdm=True):
        self.calls.append((prompts, params))
        completion = types.SimpleNamespace(text=ANSWER, token_ids=[1, 2, 3])
        return [types.SimpleNamespace(outputs=[completion] * params.kwargs["n"]) for _ in prompts]


@pytest.fixture
def fake_vllm(monkeypatch):
    module = types.ModuleType("vllm")
    module.LLM = FakeLLM
    module.SamplingParams = FakeSamplingParams
    monkeypatch.setitem(sys.modules, "vllm", module)
    FakeLLM.engines.clear()
    for name in ("WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "CUDA_VISIBLE_DEVICES"):
        monkeypatch.delenv(name, raising=False)
    return FakeLLM.engines


def vllm_model(name="q-insight", **options):
    return create_model(name, checkpoint="tiny-random", backend="vllm", max_new_tokens=64, **options).model


def test_engine_arguments_and_greedy_sampling_match_the_transformers_settings(fake_vllm):
    model = vllm_model(tensor_parallel_size=2, gpu_memory_utilization=0.8, max_pixels=200_704)
    engine = fake_vllm[0]
    assert engine.kwargs["tensor_parallel_size"] == 2 and engine.kwargs["gpu_memory_utilization"] == 0.8
    assert engine.kwargs["mm_processor_kwargs"] == {"min_pixels": 3136, "max_pixels": 200_704}
    assert engine.kwargs["limit_mm_per_prompt"] == {"image": 1}
    assert engine.visible_gpus is None  # one process: vLLM picks its GPUs itself

    scores = model.score_batch([Image.new("RGB", (64, 48), (90, 120, 150))] * 2)
    assert [s.value for s in scores] == [3.5, 3.5] and scores[0].text == "sharp and clean"
    prompts, params = engine.calls[0]
    assert len(prompts) == 2 and prompts[0]["multi_modal_data"]["image"].size == (64, 48)
    # greedy, as do_sample=False in transformers; every penalty off whatever the checkpoint's generation config
    # says (the engine is told not to read it), exactly as the transformers backend ignores it
    assert engine.kwargs["generation_config"] == "vllm"
    assert params.kwargs | {"seed": None} == {"n": 1, "max_tokens": 64, "min_tokens": 0, "temperature": 0.0,
                                              "top_p": 1.0, "top_k": -1, "min_p": 0.0, "repetition_penalty": 1.0,
                                              "presence_penalty": 0.0, "frequency_penalty": 0.0, "seed": None}
    assert model.config()["tensor_parallel_size"] == 2


def test_sampling_settings_pass_through(fake_vllm):
    model = vllm_model("visualquality-r1", do_sample=True, temperature=0.7, top_p=0.9, top_k=20, num_samples=3,
                       min_new_tokens=8)
    model.score_batch([Image.new("RGB", (40, 40))])
    params = fake_vllm[0].calls[0][1].kwargs
    assert (params["n"], params["temperature"], params["top_p"], params["top_k"], params["min_tokens"]) == (
        3, 0.7, 0.9, 20, 8)


def test_each_process_of_a_launch_starts_its_engine_on_its_own_gpus(fake_vllm, monkeypatch):
    # the second of two processes on a machine with four GPUs, two per engine
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
    vllm_model(tensor_parallel_size=2)
    assert fake_vllm[0].visible_gpus == "2,3"
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "0,1,2,3"  # restored once the engine is up

    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")  # four processes x two GPUs do not fit on four GPUs
    with pytest.raises(IQABenchError, match=r"4 processes on this machine with tensor_parallel_size=2 need 8 GPUs"):
        vllm_model(tensor_parallel_size=2)


def test_engine_options_without_the_vllm_backend_are_refused(fake_vllm):
    with pytest.raises(IQABenchError, match="options of the vLLM engine"):
        create_model("q-insight", checkpoint="tiny-random", tensor_parallel_size=2)
    with pytest.raises(IQABenchError, match="gpu_memory_utilization must be in"):
        vllm_model(gpu_memory_utilization=1.5)
