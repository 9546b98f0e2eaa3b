"""EngineSettings validation and the vLLM arguments it produces; no vLLM needed."""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import yaml
from pydantic import BaseModel, ValidationError

from earwitness.config import Settings, load_settings
from stream.engine.engine import AudioInputError, CaptionEngine
from stream.engine.families import ModelFamily
from stream.engine.settings import DEFAULT_MODEL, EngineSettings


def test_defaults_are_the_gpu_captioner() -> None:
    s = EngineSettings()
    assert s.model == DEFAULT_MODEL
    assert s.limit_mm_per_prompt == {"audio": 1}  # what vLLM 0.26 runs on a GPU
    assert s.mm_processor_cache_gb == 0
    # Sampling and the caption cap come from the model (generation_config.json) and family.
    assert (s.temperature, s.top_p, s.top_k, s.max_tokens) == (None, None, None, None)
    assert s.family is None and s.prompt is None and s.system_prompt is None
    assert s.ignore_eos is False


def test_the_captioner_takes_no_text() -> None:
    with pytest.raises(ValidationError, match="takes no prompt"):
        EngineSettings(family=ModelFamily.QWEN3_OMNI_CAPTIONER, prompt="list the alarms")
    EngineSettings(family=ModelFamily.QWEN3_OMNI_INSTRUCT, prompt="list the alarms")


def test_frozen_and_strict() -> None:
    s = EngineSettings()
    with pytest.raises(ValidationError):
        s.max_num_seqs = 3  # type: ignore[misc]
    with pytest.raises(ValidationError, match="extra"):
        EngineSettings(max_batch=3)  # type: ignore[call-arg]


def test_audio_only_limit_is_allowed_for_vllm_026_on_gpu() -> None:
    s = EngineSettings(limit_mm_per_prompt={"audio": 1})
    assert s.engine_args()["limit_mm_per_prompt"] == {"audio": 1}


@pytest.mark.parametrize(
    "limit",
    [{"audio": 2}, {"image": 0}, {"audio": 1, "text": 1}, {"audio": 1, "video": -1}],
)
def test_limit_mm_per_prompt_must_be_one_audio(limit: dict[str, int]) -> None:
    with pytest.raises(ValidationError):
        EngineSettings(limit_mm_per_prompt=limit)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_num_seqs", 0),
        ("gpu_memory_utilization", 1.5),
        ("top_p", 0),
        ("max_tokens", 0),
        ("cpu_kv_cache_bytes", 1024),
        ("dtype", "int8"),
    ],
)
def test_out_of_range_values_are_rejected(field: str, value: object) -> None:
    with pytest.raises(ValidationError):
        EngineSettings.model_validate({field: value})


def test_engine_args_leave_out_unset_optionals() -> None:
    args = EngineSettings().engine_args()
    assert "kv_cache_memory_bytes" not in args
    assert "max_num_batched_tokens" not in args
    assert args["mm_processor_cache_gb"] == 0
    assert args["disable_log_stats"] is True


def test_engine_args_cpu() -> None:
    s = EngineSettings(
        model="/models/tiny",
        load_format="dummy",
        enforce_eager=True,
        cpu_kv_cache_bytes=256 << 20,
        max_model_len=1024,
        max_tokens=64,
    )
    args = s.engine_args()
    assert args["model"] == args["tokenizer"] == "/models/tiny"
    assert args["kv_cache_memory_bytes"] == 256 << 20
    assert (args["load_format"], args["enforce_eager"]) == ("dummy", True)


class _AnalyzerLike(Settings):
    ENV_PREFIXES: ClassVar[tuple[str, ...]] = ("EARWITNESS_ANALYZER_",)
    engine: EngineSettings = EngineSettings()


def test_embeds_in_a_root_settings_and_reads_nested_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EARWITNESS_ANALYZER_ENGINE__MAX_NUM_SEQS", "64")
    monkeypatch.setenv("EARWITNESS_ANALYZER_ENGINE__LIMIT_MM_PER_PROMPT", '{"audio": 1}')
    root = load_settings(_AnalyzerLike)
    assert root.engine.max_num_seqs == 64
    assert root.engine.limit_mm_per_prompt == {"audio": 1}
    assert isinstance(root.engine, BaseModel)


@pytest.mark.parametrize(
    ("samples", "reason"),
    [
        (np.zeros((2, 16_000), np.float32), "audio_shape"),
        (np.zeros((16_000, 1), np.float32), "audio_shape"),
        (np.zeros(16_000, np.float64), "audio_dtype"),
        (np.zeros(16_000, np.int16), "audio_dtype"),
        (np.zeros(0, np.float32), "audio_length"),
        (np.zeros(31 * 16_000, np.float32), "audio_length"),
        (np.full(16_000, np.nan, np.float32), "audio_not_finite"),
        ([0.0] * 16_000, "audio_type"),
    ],
)
def test_bad_audio_is_rejected_before_vllm(samples: object, reason: str) -> None:
    """The check runs before the engine is touched: a never-started engine rejects it."""
    engine = CaptionEngine(EngineSettings())
    with pytest.raises(AudioInputError) as caught:
        import asyncio

        asyncio.run(engine.caption(samples, "stream-a/7"))  # type: ignore[arg-type]
    assert caught.value.reason == reason
    assert caught.value.record == "stream-a/7"


def test_replicas_must_share_the_gpu_memory() -> None:
    with pytest.raises(ValidationError, match=r"replicas=2 x gpu_memory_utilization=0\.9"):
        EngineSettings(replicas=2)
    assert EngineSettings(replicas=2, gpu_memory_utilization=0.45).replicas == 2
    # on CPU (cpu_kv_cache_bytes set) gpu_memory_utilization is ignored
    assert EngineSettings(replicas=2, cpu_kv_cache_bytes=1 << 28).replicas == 2


def test_cuda_graph_capture_size_reaches_vllm_only_when_set() -> None:
    assert "compilation_config" not in EngineSettings().engine_args()
    args = EngineSettings(max_cudagraph_capture_size=1024).engine_args()
    assert args["compilation_config"] == {"max_cudagraph_capture_size": 1024}


ENGINE_DOC = Path(__file__).resolve().parents[2] / "docs" / "engine.md"


def _documented_defaults() -> dict[str, str]:
    """docs/engine.md's settings table: field → the first value of its default column."""
    text = ENGINE_DOC.read_text(encoding="utf-8")
    table = text[text.index("| field | default (GPU captioner)") :].split("\n\n", 1)[0]
    found = {}
    for row in table.splitlines()[2:]:
        names, default = row.split(" | ")[:2]
        values = default.split(" (", 1)[0].split(", ")
        for name, value in zip(re.findall(r"`(\w+)`", names), values, strict=True):
            found[name] = value.strip("`")
    return found


def test_the_documented_defaults_are_the_codes() -> None:
    """Every engine setting has a row in docs/engine.md, and the row says the code's default
    (``None``, or prose such as "vLLM's default", for None)."""
    documented = _documented_defaults()
    assert set(documented) == set(EngineSettings.model_fields), "rows ≠ fields"
    for name, field in EngineSettings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        shown = documented[name]
        if default is None:
            assert shown == "None" or not shown[:1].isdigit(), f"{name}: {shown!r}"
        else:
            assert yaml.safe_load(shown) == default, f"{name}: docs {shown!r}, code {default!r}"
