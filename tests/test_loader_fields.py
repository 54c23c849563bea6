"""Every loader field validated (issue 23): tiny hand-written GGUF files and Hugging Face folders
(8-wide, one layer: milliseconds) with one field damaged each. A damaged field is refused with a
ValueError naming the file, the key and what is allowed, before anything is allocated; the GGUF
cache is verified on read; the in-process model cache reloads a replaced file."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")
pytest.importorskip("safetensors")

from safetensors.numpy import save_file  # noqa: E402

from squash_sim.checkpoints import gguf as gguf_loader  # noqa: E402
from squash_sim.checkpoints import safetensors_dir  # noqa: E402

LAYER = {"attn_norm": (8,), "attn_q": (8, 8), "attn_k": (4, 8), "attn_v": (4, 8),
         "attn_output": (8, 8), "ffn_norm": (8,), "ffn_gate": (8, 8), "ffn_up": (8, 8),
         "ffn_down": (8, 8)}


def tiny_gguf(path, *, layers=1, fields=None, tensors=None, dtypes=None):
    """A one-layer llama GGUF (d 8, 2 heads of 4, 1 kv head, vocabulary 8). fields: metadata
    overrides {key: (writer method, value)}; tensors: {name: shape or None (left out)}."""
    writer = gguf.GGUFWriter(str(path), "llama")
    metadata = {"llama.block_count": ("add_uint32", layers),
                "llama.embedding_length": ("add_uint32", 8),
                "llama.feed_forward_length": ("add_uint32", 8),
                "llama.attention.head_count": ("add_uint32", 2),
                "llama.attention.head_count_kv": ("add_uint32", 1),
                "llama.attention.layer_norm_rms_epsilon": ("add_float32", 1e-5),
                "llama.rope.freq_base": ("add_float32", 10000.0)}
    metadata.update(fields or {})
    for key, (method, value) in metadata.items():
        getattr(writer, method)(key, value)
    if "tokenizer.ggml.model" not in metadata:
        writer.add_tokenizer_model("llama")
    writer.add_token_list(["<unk>", "<s>", "</s>", "a", "b", "c", "d", "e"])
    writer.add_token_types([2, 3, 3, 1, 1, 1, 1, 1])
    writer.add_token_scores([0.0] * 8)
    for key, value in (("tokenizer.ggml.bos_token_id", 1), ("tokenizer.ggml.eos_token_id", 2),
                       ("tokenizer.ggml.unknown_token_id", 0)):
        if key not in (fields or {}):
            writer.add_uint32(key, value)
    shapes = {"token_embd.weight": (8, 8), "output_norm.weight": (8,)}
    for i in range(layers):
        shapes.update({f"blk.{i}.{part}.weight": shape for part, shape in LAYER.items()})
    shapes.update(tensors or {})
    rng = np.random.default_rng(0)
    for name, shape in shapes.items():
        if shape is not None:
            dtype = (dtypes or {}).get(name, np.float32)
            writer.add_tensor(name, (rng.standard_normal(shape) * 0.1).astype(dtype))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def tiny_folder(folder, *, config=None, tensors=None, shards=None, dtype=np.float32):
    """The same model as a Hugging Face folder: config.json + model.safetensors (+ tokenizer)."""
    folder.mkdir(exist_ok=True)
    hf = {"architectures": ["LlamaForCausalLM"], "vocab_size": 8, "hidden_size": 8,
          "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
          "num_key_value_heads": 1, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
          "tie_word_embeddings": True}
    hf.update(config or {})
    (folder / "config.json").write_text(json.dumps(hf))
    names = {"model.embed_tokens.weight": (8, 8), "model.norm.weight": (8,)}
    hf_part = {"attn_norm": "input_layernorm", "attn_q": "self_attn.q_proj",
               "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
               "attn_output": "self_attn.o_proj", "ffn_norm": "post_attention_layernorm",
               "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}
    names.update({f"model.layers.0.{hf_part[p]}.weight": s for p, s in LAYER.items()})
    names.update(tensors or {})
    rng = np.random.default_rng(0)
    arrays = {n: (rng.standard_normal(s) * 0.1).astype(dtype) for n, s in names.items()
              if s is not None}
    save_file(arrays, folder / "model.safetensors")
    for shard, names_in_it in (shards or {}).items():
        save_file({n: arrays[n] for n in names_in_it}, folder / shard)
    return folder


def test_the_tiny_files_load(tmp_path):
    model = gguf_loader.load(tiny_gguf(tmp_path / "t.gguf"), cache=False)
    assert model.config.n_layers == 1 and model.config.d_head == 4
    assert safetensors_dir.load(tiny_folder(tmp_path / "hf")).config.n_kv_heads == 1


GGUF_BAD = {  # what changes → what the message must say
    "block_count 30000 over one layer": (dict(fields={"llama.block_count": ("add_uint32", 30000)}),
                                         "'llama.block_count' must be an integer in 1..4096"),
    "block_count 2 over one layer": (dict(fields={"llama.block_count": ("add_uint32", 2)}),
                                     "says 2 layers .* the file holds tensors for 1"),
    "block_count 1.9": (dict(fields={"llama.block_count": ("add_float32", 1.9)}),
                        "'llama.block_count' must be an integer in 1..4096, got float"),
    "embedding_length 8.5": (dict(fields={"llama.embedding_length": ("add_float32", 8.5)}),
                             "'embedding_length' must be an integer"),
    "head_count a string": (dict(fields={"llama.attention.head_count": ("add_string", "2")}),
                            "'attention.head_count' must be an integer"),
    "rope base nan": (dict(fields={"llama.rope.freq_base": ("add_float32", float("nan"))}),
                      "'rope.freq_base' must be a finite number"),
    "eps 0": (dict(fields={"llama.attention.layer_norm_rms_epsilon": ("add_float32", 0.0)}),
              "'attention.layer_norm_rms_epsilon' must be a finite number in \\(0, 1\\]"),
    "q of the right size, wrong shape": (dict(tensors={"blk.0.attn_q.weight": (4, 16)}),
                                         "'blk.0.attn_q.weight' has shape \\[4, 16\\]; the config "
                                         "needs \\[8, 8\\]"),
    "int8 weights": (dict(dtypes={"blk.0.ffn_up.weight": np.int8}),
                     "'blk.0.ffn_up.weight' is of type I8; weights must be floats"),
    "a missing tensor": (dict(tensors={"blk.0.ffn_up.weight": None}),
                         "'blk.0.ffn_up.weight' is missing"),
    "add_bos_token 'no'": (dict(fields={"tokenizer.ggml.add_bos_token": ("add_string", "no")}),
                           "'tokenizer.ggml.add_bos_token' must be a bool"),
    "bos id 1.5": (dict(fields={"tokenizer.ggml.bos_token_id": ("add_float32", 1.5)}),
                   "'tokenizer.ggml.bos_token_id' must be an integer"),
}


@pytest.mark.parametrize("case", list(GGUF_BAD))
def test_a_damaged_gguf_field_is_named(tmp_path, case):
    options, message = GGUF_BAD[case]
    path = tiny_gguf(tmp_path / "bad.gguf", **options)
    start = time.perf_counter()
    with pytest.raises(ValueError, match=message) as error:
        gguf_loader.load(path, cache=False)
    assert "bad.gguf" in str(error.value) and time.perf_counter() - start < 5


def _tensor_info_offset(data: bytes, name: str) -> int:
    """Byte position of the data-offset field of tensor `name` in a GGUF header (2-D tensors)."""
    at = data.index(name.encode()) + len(name)
    dims = int.from_bytes(data[at:at + 4], "little")
    return at + 4 + 8 * dims + 4


def test_overlapping_gguf_data_ranges_are_refused(tmp_path):
    path = tiny_gguf(tmp_path / "shared.gguf")
    data = bytearray(path.read_bytes())
    q, k = (_tensor_info_offset(data, f"blk.0.attn_{x}.weight") for x in "qk")
    data[k:k + 8] = data[q:q + 8]  # attn_k reads attn_q's bytes
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="share data bytes"):
        gguf_loader.load(path, cache=False)


def test_a_fifo_is_refused_before_it_is_opened(tmp_path):
    os.mkfifo(tmp_path / "model.gguf")
    with pytest.raises(ValueError, match="not a regular file"):
        gguf_loader.load(tmp_path / "model.gguf", cache=False)
    folder = tiny_folder(tmp_path / "hf")
    (folder / "model.safetensors").unlink()
    os.mkfifo(folder / "model.safetensors")
    with pytest.raises(ValueError, match="model.safetensors: a weights file is not a regular"):
        safetensors_dir.load(folder)


FOLDER_BAD = {
    "hidden_size 32.5": (dict(config={"hidden_size": 32.5}),
                         "'hidden_size' must be an integer in 1..1048576, got float 32.5"),
    "num_hidden_layers 1.9": (dict(config={"num_hidden_layers": 1.9}),
                              "'num_hidden_layers' must be an integer"),
    "num_hidden_layers 30000": (dict(config={"num_hidden_layers": 30000}),
                                "'num_hidden_layers' must be an integer in 1..4096"),
    "num_hidden_layers 3 over one": (dict(config={"num_hidden_layers": 3}),
                                     "says 3 layers .* holds tensors for 1"),
    "num_attention_heads null": (dict(config={"num_attention_heads": None}),
                                 "'num_attention_heads'|attention.head_count"),
    "heads not dividing": (dict(config={"num_attention_heads": 3}), "not a multiple"),
    "vocab_size true": (dict(config={"vocab_size": True}), "'vocab_size' must be an integer"),
    "tie_word_embeddings 'no'": (dict(config={"tie_word_embeddings": "no"}),
                                 "'tie_word_embeddings' must be true or false"),
    "rope_parameters a list": (dict(config={"rope_parameters": []}),
                               "'rope_parameters' must be an object"),
    "architectures a string": (dict(config={"architectures": "LlamaForCausalLM"}),
                               "'architectures' must be a list"),
    "q_proj transposed": (dict(tensors={"model.layers.0.self_attn.k_proj.weight": (8, 4)}),
                          "'blk.0.attn_k.weight' has shape \\[8, 4\\]; the config needs \\[4, 8\\]"),
    "int8 weights": (dict(dtype=np.int8), "is I8; weights must be one of F32, F16, BF16"),
    "a tensor in two shards": (dict(shards={"extra.safetensors": ["model.norm.weight"]}),
                               "'model.norm.weight' is also in"),
}


@pytest.mark.parametrize("case", list(FOLDER_BAD))
def test_a_damaged_config_field_is_named(tmp_path, case):
    options, message = FOLDER_BAD[case]
    folder = tiny_folder(tmp_path / "hf", **options)
    with pytest.raises(ValueError, match=message) as error:
        safetensors_dir.load(folder)
    assert "hf" in str(error.value)


def test_deep_or_huge_json_is_refused_in_one_message(tmp_path):
    folder = tiny_folder(tmp_path / "hf")
    (folder / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match="config.json: config.json is nested too deeply"):
        safetensors_dir.load(folder)
    (folder / "config.json").write_text(" " * (2 << 20))
    with pytest.raises(ValueError, match="bytes; at most"):
        safetensors_dir.load(folder)


def test_the_gguf_cache_is_verified_on_read(tmp_path, monkeypatch):
    monkeypatch.setenv("SQUASH_SIM_CACHE", str(tmp_path / "cache"))
    path = tiny_gguf(tmp_path / "t.gguf")
    first = gguf_loader.load(path)
    folder = next((tmp_path / "cache").glob("gguf-*"))
    assert not isinstance(gguf_loader._read_cache(folder, path), str)  # whole: used
    good = np.load(folder / "layers.0.wq.npy")
    np.save(folder / "layers.0.wq.npy", np.full_like(good, 1e30))
    assert "values a fresh load refuses" in gguf_loader._read_cache(folder, path)
    np.save(folder / "layers.0.wq.npy", np.zeros_like(good))
    assert "sha256 does not match" in gguf_loader._read_cache(folder, path)
    np.save(folder / "layers.0.wq.npy", good)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["config"]["rope_base"] = 500.0  # edited under an intact fingerprint
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert "digest does not match" in gguf_loader._read_cache(folder, path)
    with pytest.warns(UserWarning, match="rebuilding it from the GGUF"):
        again = gguf_loader.load(path)
    assert again.config.rope_base == first.config.rope_base == 10000.0


def test_a_cached_load_hashes_each_file_once_and_sees_a_later_write(tmp_path, monkeypatch):
    monkeypatch.setenv("SQUASH_SIM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(gguf_loader, "_SETTLED_NS", 0)  # the files count as settled at once
    path = tiny_gguf(tmp_path / "t.gguf")
    gguf_loader.load(path)
    folder = next((tmp_path / "cache").glob("gguf-*"))
    hashed = []
    sha256 = gguf_loader.checks.sha256
    monkeypatch.setattr(gguf_loader.checks, "sha256", lambda file: hashed.append(file.name)
                        or sha256(file))
    assert not isinstance(gguf_loader._read_cache(folder, path), str) and hashed  # stamps them
    hashed.clear()
    assert not isinstance(gguf_loader._read_cache(folder, path), str) and hashed == []
    time.sleep(0.05)  # past the file system's timestamp tick: the write changes the ctime
    good = np.load(folder / "layers.0.wq.npy")
    np.save(folder / "layers.0.wq.npy", np.zeros_like(good))
    assert "sha256 does not match" in gguf_loader._read_cache(folder, path)
    assert hashed == ["layers.0.wq.npy"]  # only the written file is read again
    (folder / "verified.json").write_text("[")  # a damaged stamp: everything is hashed
    np.save(folder / "layers.0.wq.npy", good)
    hashed.clear()
    assert not isinstance(gguf_loader._read_cache(folder, path), str)
    assert len(hashed) == len(json.loads((folder / "manifest.json").read_text())["hashes"])


def test_a_replaced_file_is_reloaded_in_process(tmp_path):
    from squash_sim.models import load

    folder = tiny_folder(tmp_path / "hf")
    first = load(folder)
    assert load(folder) is first  # unchanged: the cached model
    tiny_folder(folder, config={"rope_theta": 500.0})  # replaced on disk
    assert load(folder).config.rope_base == 500.0
    tiny_folder(folder, config={"hidden_size": 32.5})
    with pytest.raises(ValueError, match="hidden_size"):
        load(folder)


def test_a_replaced_gguf_is_reloaded_in_process(tmp_path, monkeypatch):
    from squash_sim.models import load

    monkeypatch.setenv("SQUASH_SIM_CACHE", str(tmp_path / "cache"))
    path = tiny_gguf(tmp_path / "t.gguf")
    assert load(path).config.n_layers == 1
    tiny_gguf(tmp_path / "t.gguf", fields={"llama.block_count": ("add_float32", 1.9)})
    with pytest.raises(ValueError, match="block_count"):  # not the model it replaced
        load(path)
