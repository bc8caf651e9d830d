import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mbrl_jax.core.replay import (
    buffer_add,
    buffer_init,
    buffer_sample,
    trajectory_buffer_add,
    trajectory_buffer_init,
    trajectory_buffer_sample,
)
from mbrl_jax.core.types import Transition


def test_buffer_add_mask_wraparound_and_sample():
    buf = buffer_init({"x": jnp.zeros(2), "i": jnp.int32(0)}, capacity=5)
    batch = {"x": jnp.arange(8.0).reshape(4, 2), "i": jnp.arange(4)}
    buf = jax.jit(buffer_add)(buf, batch, jnp.array([True, False, True, True]))
    assert int(buf.size) == 3 and int(buf.position) == 3
    assert list(np.asarray(buf.data["i"][:3])) == [0, 2, 3]
    buf = buffer_add(buf, {"x": jnp.zeros((4, 2)), "i": jnp.arange(10, 14)})
    assert int(buf.size) == 5 and int(buf.position) == 2
    # Slots 3, 4, 0, 1 take 10, 11, 12, 13; slot 2 keeps the oldest survivor.
    assert list(np.asarray(buf.data["i"])) == [12, 13, 3, 10, 11]
    sample = buffer_sample(buf, jax.random.key(0), 1000)
    assert set(np.unique(np.asarray(sample["i"]))) <= {3, 10, 11, 12, 13}
    with pytest.raises(ValueError, match="capacity"):
        buffer_init({"x": jnp.zeros(1)}, 0)


def test_trajectory_buffer_windows_stop_at_episode_ends():
    example = Transition(
        jnp.zeros(1),
        jnp.int32(0),
        jnp.float32(0),
        jnp.zeros(1),
        jnp.bool_(False),
        {"policy": jnp.zeros(2)},
    )
    buf = trajectory_buffer_init(example, 8, 1)
    obs = jnp.arange(6, dtype=jnp.float32).reshape(6, 1, 1)
    steps = Transition(
        state=obs,
        action=jnp.zeros((6, 1), jnp.int32),
        reward=jnp.ones((6, 1)),
        next_state=obs + 1,
        done=jnp.array([0, 0, 1, 0, 0, 0], bool)[:, None],
        extras={"policy": jnp.full((6, 1, 2), 0.5)},
    )
    buf = trajectory_buffer_add(buf, steps)
    buf = trajectory_buffer_add(buf, jax.tree.map(lambda x: x + 0, steps))
    assert int(buf.size) == 8 and int(buf.position) == 4
    window, valid = trajectory_buffer_sample(buf, jax.random.key(0), 64, 3)
    obs = np.asarray(window.state[..., 0])  # [B, 3]
    # Oldest row is logical step 0 = obs 4 of the first add; windows are consecutive in time.
    sequence = [4, 5, 0, 1, 2, 3, 4, 5]
    for row in obs:
        start = sequence.index(int(row[0]))
        assert list(row.astype(int)) == sequence[start : start + 3]
    valid = np.asarray(valid)
    done = np.asarray(window.done)
    for v, d in zip(valid, done, strict=True):
        ended = np.cumsum(d) - d
        np.testing.assert_array_equal(v, ended == 0)


def test_buffers_reject_bad_capacity():
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="capacity"):
            buffer_init(jnp.zeros(2), bad)
        with pytest.raises(ValueError, match="capacity"):
            trajectory_buffer_init(jnp.zeros(2), bad, 1)
