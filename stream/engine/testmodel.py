"""``earwitness make-test-model DIR [--family F]``: a random-weight model directory, built locally.

CI and the CPU demo cannot download a 60 GB (or 15 GB) model, so they run one of the same
architecture with tiny dimensions and random weights, one per model family
(``stream/engine/families.py``); nothing is downloaded, every file is written here:

    family                 architecture (vLLM runs its thinker)     module
    qwen3-omni-captioner   Qwen3OmniMoeForConditionalGeneration     testmodel_qwen3.py
    qwen3-omni-instruct    (same; another name)                     testmodel_qwen3.py
    qwen3-omni-thinking    (same; another name)                     testmodel_qwen3.py
    qwen2.5-omni           Qwen2_5OmniModel                         testmodel_qwen25.py

What a directory holds::

    config.json                  every field vLLM reads set (transformers' class defaults are
                                 not the real models' values); ``_name_or_path`` names the
                                 real model it stands in for (family detection reads it)
    generation_config.json       eos = <|im_end|>, <|endoftext|>; the family's sampling
    tokenizer.json               byte-level BPE (``testtokenizer.py``): 256 byte tokens, a few
    tokenizer_config.json        merges (user, system, assistant), fillers, then the family's
    chat_template.jinja          special tokens in the real tokenizer's order
    processor_config.json        the family's processor: Whisper features (128 mel bins, hop
                                 160, n_fft 400, 16 kHz) and the image/video processors it
                                 insists on, with a Qwen-style chat template
    earwitness-test-model.json   how it was made

There are no weights: load it with ``load_format="dummy"`` (vLLM then fills the parameters
with random values). Every id below ``vocab_size`` decodes, so any sampled id gives text; the
text is noise, and random weights seldom sample ``<|im_end|>``, so set ``max_tokens`` (and
``ignore_eos`` when timing).

``--real-dims`` writes the full-size dimensions instead (Qwen3-Omni-30B-A3B, Qwen2.5-Omni-7B;
config only, still ``load_format="dummy"``) for GPU benchmarks: the same small tokenizer,
padded with filler tokens so that the special tokens sit at the real ids.

The output is a pure function of the options and the installed transformers version: two
runs write byte-identical files.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from stream.engine import testmodel_qwen3, testmodel_qwen25
from stream.engine.families import ModelFamily

__all__ = ["write_test_model"]

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", type=Path, metavar="DIR", help="where to write the model")
    parser.add_argument(
        "--family",
        type=ModelFamily,
        choices=list(ModelFamily),
        default=ModelFamily.QWEN3_OMNI_CAPTIONER,
        help="model family (engine.family); default %(default)s",
    )
    parser.add_argument(
        "--real-dims",
        action="store_true",
        help="full-size dimensions (config only; GPU benchmarks with load_format=dummy)",
    )


def run(args: argparse.Namespace) -> int:
    write_test_model(args.directory, family=args.family, real_dims=args.real_dims)
    size = "full-size" if args.real_dims else "tiny"
    print(f"wrote {size} {args.family} test model to {args.directory}")
    print('load it with load_format="dummy": it has no weights, and its captions are noise')
    return 0


def write_test_model(
    directory: Path,
    *,
    family: ModelFamily = ModelFamily.QWEN3_OMNI_CAPTIONER,
    real_dims: bool = False,
) -> Path:
    """Write the model directory (created if needed; existing files are overwritten)."""
    directory.mkdir(parents=True, exist_ok=True)
    if family is ModelFamily.QWEN2_5_OMNI:
        testmodel_qwen25.write(directory, real_dims=real_dims)
    else:
        testmodel_qwen3.write(directory, family, real_dims=real_dims)
    testmodel_qwen3.write_json(
        directory / "earwitness-test-model.json",
        {
            "dims": "real" if real_dims else "tiny",
            "family": family.value,
            "load_format": "dummy",
            "weights": None,
        },
    )
    logger.info(
        "wrote %s test model (%s dims) to %s", family, "real" if real_dims else "tiny", directory
    )
    return directory
