"""Hugging Face safetensors directories (config.json + *.safetensors), and what any checkpoint
reader must refuse. The models are tiny random LlamaForCausalLM / Gemma3ForCausalLM that
transformers itself creates and saves in the test (no download); squash_sim loads the directory
and must give transformers' logits at every position."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("safetensors")

from squash_sim.checkpoints import safetensors_dir  # noqa: E402
from squash_sim.models import load  # noqa: E402

VOCAB, TOKENS = 96, np.array([[5, 17, 3, 88, 42, 42, 42, 7, 1, 60, 33, 2]], np.int32)


def _randomise(model, seed: int) -> None:
    """Every parameter random (norm weights too: Gemma stores them as w and applies 1 + w, so
    zeros would hide a missing + 1)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=generator))


def _llama(tmp_path, tied: bool, dtype=torch.float32):
    config = transformers.LlamaConfig(
        vocab_size=VOCAB, hidden_size=48, intermediate_size=80, num_hidden_layers=2,
        num_attention_heads=6, num_key_value_heads=2, rope_theta=5000.0, rms_norm_eps=1e-5,
        tie_word_embeddings=tied)
    model = transformers.LlamaForCausalLM(config).eval()
    _randomise(model, 0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(dtype).float())  # the values the file will hold, kept in float32
    # Saved from a copy: .to(bfloat16) would also round the model's RoPE inv_freq buffer.
    copy.deepcopy(model).to(dtype).save_pretrained(tmp_path)
    return model


def _gemma3(tmp_path):
    config = transformers.Gemma3TextConfig(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, sliding_window=4,
        layer_types=["sliding_attention", "full_attention", "sliding_attention"],
        query_pre_attn_scalar=64)
    model = transformers.Gemma3ForCausalLM(config).eval()
    _randomise(model, 1)
    model.save_pretrained(tmp_path)
    return model


def _compare(ours, hf, tokens=TOKENS):
    theirs = hf(torch.tensor(tokens.astype(np.int64))).logits[0].detach().double().numpy()
    mine = np.asarray(ours.forward(tokens, logits="all").logits[0], np.float64)
    scale = np.abs(theirs).max()
    assert np.abs(mine - theirs).max() <= 1e-5 * scale, np.abs(mine - theirs).max() / scale
    assert (mine.argmax(-1) == theirs.argmax(-1)).all()


@pytest.mark.parametrize("tied", [True, False])
def test_tiny_llama_logits_equal_transformers(tmp_path, tied):
    hf = _llama(tmp_path, tied)
    ours = load(tmp_path)
    c = ours.config
    assert (c.n_layers, c.d_model, c.n_heads, c.n_kv_heads, c.rope_base, c.tied_embedding) == \
        (2, 48, 6, 2, 5000.0, tied)
    _compare(ours, hf)


def test_tiny_gemma3_logits_equal_transformers(tmp_path):
    hf = _gemma3(tmp_path)
    ours = load(tmp_path)
    assert ours.config.sliding_window == (4, None, 4)  # from layer_types, not a guessed pattern
    assert ours.config.query_scale == 64 ** -0.5
    _compare(ours, hf)  # 12 tokens > window 4: the sliding layers' masks matter


def test_bfloat16_weights_are_widened_exactly(tmp_path):
    hf = _llama(tmp_path, tied=False, dtype=torch.bfloat16)  # hf holds the bf16-rounded weights
    _compare(load(tmp_path), hf)


def test_unsupported_directories_get_clear_errors(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["GPT2LMHeadModel"]}))
    with pytest.raises(ValueError, match=r"config.json describes \['GPT2LMHeadModel'\]; supported"):
        safetensors_dir.load(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="config.json is not readable JSON"):
        safetensors_dir.load(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(
        {"architectures": ["LlamaForCausalLM"], "rope_scaling": {"rope_type": "llama3"}}))
    with pytest.raises(ValueError, match="not supported: rope_scaling"):
        safetensors_dir.load(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"]}))
    (tmp_path / "pytorch_model.bin").write_bytes(b"a pickle")
    with pytest.raises(ValueError, match="no \\*.safetensors file.*pytorch_model.bin: pickles"):
        safetensors_dir.load(tmp_path)


def test_a_missing_tensor_is_named(tmp_path):
    from safetensors.numpy import load_file, save_file

    _llama(tmp_path, tied=True)
    tensors = load_file(tmp_path / "model.safetensors")
    del tensors["model.layers.1.mlp.up_proj.weight"]
    save_file(tensors, tmp_path / "model.safetensors")
    with pytest.raises(ValueError, match="tensor 'blk.1.ffn_up.weight' is missing"):
        safetensors_dir.load(tmp_path)


def test_a_directory_without_config_is_not_guessed(tmp_path):
    with pytest.raises(ValueError, match="has no config.json"):
        load(tmp_path)
    with pytest.raises(FileNotFoundError, match="neither a known model"):
        load(tmp_path / "nothing-here")
