"""Dreamer: tiny runs on states and pixels, chunking, recompilation, bad input."""

import jax
import numpy as np
import pytest

from mbrl_jax import envs
from mbrl_jax.agents import dreamer
from mbrl_jax.core.chunked import as_train, run_units
from mbrl_jax.envs.pixels import PixelObservation

TINY = dict(
    model_size="tiny",
    num_envs=2,
    learning_starts=32,
    batch_size=2,
    batch_length=8,
    collect_steps=4,
    train_ratio=2.0,
    stoch=4,
    classes=4,
    horizon=3,
    imagine_starts=8,
)


@pytest.mark.slow
def test_tiny_run_on_pendulum_learns_and_does_not_recompile():
    env, params = envs.make("Pendulum-v1")
    cfg = dreamer.Config(num_steps=96, **TINY)
    assert cfg.updates_per_unit == 1 and cfg.effective_train_ratio == 2.0
    chunked = dreamer.make_chunked(cfg, env, params)
    train = jax.jit(as_train(chunked))
    out = train(jax.random.key(0))
    assert out.metrics.reward.shape == (48,)
    updates = np.asarray(out.losses["updates"])
    assert updates.shape == (12,) and updates[:3].sum() == 0 and updates[-1] == 1
    for name in dreamer.METRIC_NAMES:
        assert np.all(np.isfinite(np.asarray(out.losses[name]))), name
    assert float(out.losses["recon_loss"][-1]) > 0
    train(jax.random.key(1))
    assert train._cache_size() == 1
    # Chunked pieces run the same operations on the same keys as one call.
    state = chunked.init(jax.random.key(0))
    state, outs_a = run_units(chunked, 6)(state)
    state, outs_b = run_units(chunked, 6)(state)
    outs = jax.tree.map(lambda a, b: np.concatenate([a, b]), outs_a, outs_b)
    _, again = chunked.finish(state, outs)
    np.testing.assert_allclose(again.metrics.reward, out.metrics.reward, rtol=1e-4, atol=1e-4)
    result = jax.jit(chunked.evaluate, static_argnums=2)(state, jax.random.key(3), 2)
    assert result.returns.shape == (2,) and np.all(result.lengths == 200)


@pytest.mark.slow
def test_tiny_run_on_cartpole_pixels():
    env, params = envs.make("CartPole-v1")
    pixel_env = PixelObservation(env, size=16)
    cfg = dreamer.Config(num_steps=64, **TINY)
    out = jax.jit(dreamer.make_train(cfg, pixel_env, params))(jax.random.key(0))
    assert out.metrics.reward.shape == (32,)
    assert np.all(np.isfinite(np.asarray(out.losses["recon_loss"])))


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(train_ratio=0.0), "train_ratio"),
        (dict(train_ratio=float("nan")), "train_ratio"),
        (dict(horizon=0), "horizon"),
        (dict(num_steps=97), "multiple of num_envs"),
        (dict(train_ratio=0.5), "no update"),
        (dict(model_size="xl"), "model_size"),
        (dict(imagine_starts=0), "imagine_starts"),
        (dict(actor_lr=float("nan")), "actor_lr"),
        (dict(imagine_starts=17), "imagine_starts"),  # more than the 2 x 8 batch
        (dict(imagine_starts=2.5), "imagine_starts"),
        (dict(discount=1.5), "discount"),
    ],
)
def test_bad_config(kwargs, field):
    with pytest.raises(ValueError, match=field):
        dreamer.Config(**{**TINY, "num_steps": 96, **kwargs})


def test_dreamerv3_settings():
    paper = dreamer.dreamerv3()
    assert (paper.model_size, paper.train_ratio, paper.stoch, paper.classes) == (
        "xs",
        512.0,
        32,
        32,
    )
    assert paper.imagine_starts is None and paper.actor_lr == 3e-5 and paper.model_lr == 1e-4
    assert dreamer.dreamerv3("s", num_steps=1000).model_size == "s"
    assert (
        dreamer.Config(**{**TINY, "num_steps": 96, "imagine_starts": None}).imagine_starts is None
    )
    default = dreamer.Config()
    assert default.actor_critic(discrete=True).actor_lr == 3e-5  # REINFORCE
    assert default.actor_critic(discrete=False).actor_lr == 1e-4  # through the model
    assert dreamer.Config(actor_lr=2e-4).actor_critic(discrete=True).actor_lr == 2e-4


def test_bad_envs():
    maze, maze_params = envs.make("DynaMaze")
    cfg = dreamer.Config(num_steps=96, **TINY)
    with pytest.raises(ValueError, match="discrete index"):
        dreamer.make_chunked(cfg, maze, maze_params)
    env, params = envs.make("CartPole-v1")
    with pytest.raises(ValueError, match="multiple of 16"):
        dreamer.make_chunked(cfg, PixelObservation(env, size=24), params)
