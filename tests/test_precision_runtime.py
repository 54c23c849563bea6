"""The persistent compilation cache: only entry points turn it on, and the user can turn it off."""

from __future__ import annotations

import os
import subprocess
import sys

from squash_sim import _xla_flags


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(_xla_flags.CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert _xla_flags.cache_dir() == os.path.join(str(tmp_path), "squash_sim", "jax")
    monkeypatch.setenv(_xla_flags.CACHE_ENV, "0")
    assert _xla_flags.cache_dir() is None
    monkeypatch.setenv(_xla_flags.CACHE_ENV, str(tmp_path / "mine"))
    assert _xla_flags.cache_dir() == str(tmp_path / "mine")


def test_importing_squash_sim_leaves_jax_config_alone_and_the_cli_fills_the_cache(tmp_path):
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path))
    env.pop(_xla_flags.CACHE_ENV, None)
    code = "import squash_sim, jax; print(jax.config.jax_compilation_cache_dir)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True).stdout.strip()
    assert out == "None"
    cache = tmp_path / "squash_sim" / "jax"
    code = ("import sys; from squash_sim import _xla_flags; import jax, jax.numpy as jnp; "
            "print(_xla_flags.enable_compilation_cache()); jax.jit(lambda x: x * 3 + 1)(jnp.ones(3))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True).stdout.strip()
    assert out == str(cache) and any(cache.iterdir())
    env[_xla_flags.CACHE_ENV] = "0"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True).stdout.strip()
    assert out == "None"
