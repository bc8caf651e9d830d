"""Sharded runs over 8 CPU devices and over two processes, each in a subprocess so the
rest of the suite keeps its single device."""

import json
import os
import socket
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

EIGHT_DEVICES = r"""
import jax
import numpy as np
from jax.sharding import PartitionSpec
from mbrl_jax import envs
from mbrl_jax.agents import alphazero, dyna_q
from mbrl_jax.core.sharding import device_mesh, make_sharded
from mbrl_jax.planners.search import SearchConfig

assert jax.device_count() == 8, jax.devices()
env, params = envs.make("DynaMaze")
train = dyna_q.make_train(dyna_q.Config(num_steps=300, planning_steps=5), env, params)
run = make_sharded(train, device_mesh("all"))

# 13 seeds: not a multiple of 8. Bitwise equal to the unsharded run.
keys = jax.random.split(jax.random.key(0), 13)
want = jax.jit(jax.vmap(train))(keys)
got = run(keys)
for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got), strict=True):
    assert a.shape == b.shape and np.array_equal(np.asarray(a), np.asarray(b))

# 16 seeds: the output stays sharded along the seed axis over all 8 devices.
out = run(jax.random.split(jax.random.key(1), 16))
sharding = out.q_values.sharding
assert sharding.spec == PartitionSpec("seeds") and len(sharding.device_set) == 8, sharding
run(jax.random.split(jax.random.key(2), 16))
assert run.compiled._cache_size() == 1  # 13 and 16 both pad to 16: one compilation

# AlphaZero's environment axis sharded over 4 devices: see NEURAL below.
# Bad input: one line each.
for bad, match in (
    (lambda: device_mesh(9), "asked for 9"),
    (lambda: device_mesh(0), "asked for 0"),
    (lambda: make_sharded(train, device_mesh(2), axis="envs"), "not an axis"),
    (lambda: run(keys[:0]), "empty"),
):
    try:
        bad()
    except ValueError as e:
        assert match in str(e), e
    else:
        raise AssertionError(match)
print("ok")
"""


NEURAL = r"""
import jax
import numpy as np
from mbrl_jax import envs
from mbrl_jax.agents import alphazero
from mbrl_jax.core.sharding import ENV_AXIS, device_mesh, make_sharded
from mbrl_jax.planners.search import SearchConfig

assert jax.device_count() == 8, jax.devices()
FULL = __FULL__
# A neural agent: allclose.
small = alphazero.Config(num_iterations=2, num_envs=4, unroll_length=8,
                         search=SearchConfig(num_simulations=4, discount=0.99), hidden=(16,),
                         num_minibatches=2, n_step=4, eval_envs=2, eval_steps=20)
cart, cart_params = envs.make("CartPole-v1")
az = alphazero.make_train(small, cart, cart_params)
keys = jax.random.split(jax.random.key(3), 3)
want = jax.jit(jax.vmap(az))(keys)
if FULL:  # the seeds of a neural agent over 4 devices
    got = make_sharded(az, device_mesh(4))(keys)
    for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-4)

# The environment axis of one AlphaZero run sharded over 4 devices (data
# parallel): the compiler partitions it and all-reduces the gradients.
from mbrl_jax.core.sharding import ENV_AXIS
env_mesh = device_mesh(4, axis=ENV_AXIS)
sharded_az = jax.jit(alphazero.make_train(small, cart, cart_params, mesh=env_mesh))
compiled_az = sharded_az.lower(keys[0]).compile()  # compiled once, run below
assert "all-reduce" in compiled_az.as_text()
got = compiled_az(keys[0])
want = jax.tree.map(lambda x: x[0], want)  # the unsharded run of the same key, above
for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got), strict=True):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-3, atol=1e-3)
if FULL:
    from mbrl_jax.agents import muzero
    small_mz = muzero.Config(num_iterations=2, num_envs=4, unroll_length=8,
                             search=SearchConfig(num_simulations=4, discount=0.99), latent_size=8,
                             hidden=(16,), buffer_size=32, unroll_steps=3, n_step=4, batch_size=8,
                             updates_per_iteration=2, eval_envs=2, eval_steps=20)
    want = jax.jit(muzero.make_train(small_mz, cart, cart_params))(jax.random.key(4))
    got = jax.jit(muzero.make_train(small_mz, cart, cart_params, mesh=env_mesh))(jax.random.key(4))
    for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-3, atol=1e-3)
try:
    alphazero.make_train(small, cart, cart_params, mesh=device_mesh(3, axis=ENV_AXIS))
except ValueError as e:
    assert "multiple" in str(e)
else:
    raise AssertionError("num_envs 4 over 3 devices")

print("ok")
"""


def _run(script: str, env_extra: dict, timeout: int = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, JAX_PLATFORMS="cpu", **env_extra)
    return subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


EIGHT = {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"}


def test_sharded_runs_match_unsharded_over_eight_devices():
    # The tabular checks; the neural agents' (AlphaZero's seeds and environments,
    # MuZero's environments) are the slow test below.
    done = _run(EIGHT_DEVICES, EIGHT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.strip().endswith("ok")


@pytest.mark.slow
def test_neural_agents_sharded_over_seeds_and_environments():
    # AlphaZero's seeds and environments over 4 devices, MuZero's environments over 4.
    done = _run(NEURAL.replace("__FULL__", "True"), EIGHT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.strip().endswith("ok")


PROCESS = r"""
import json, sys
import jax
jax.config.update("jax_cpu_collectives_implementation", "gloo")
from mbrl_jax.core.sharding import initialize_distributed, make_sharded, gather
assert initialize_distributed()
from mbrl_jax import envs
from mbrl_jax.agents import dyna_q
env, params = envs.make("DynaMaze")
train = dyna_q.make_train(dyna_q.Config(num_steps=200, planning_steps=5), env, params)
keys = jax.random.split(jax.random.key(0), 5)
out = gather(make_sharded(train)(keys).metrics.reward, 5)
if jax.process_index() == 0:
    with open(sys.argv[1], "w") as f:
        json.dump({"devices": jax.device_count(), "reward": out.tolist()}, f)
print("ok", jax.process_index(), jax.device_count())
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_on_localhost_match_one_process(tmp_path):
    out_file = tmp_path / "results.json"
    port = _free_port()
    env = dict(
        os.environ,
        JAX_PLATFORMS="cpu",
        MBRL_JAX_COORDINATOR=f"127.0.0.1:{port}",
        MBRL_JAX_NUM_PROCESSES="2",
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", PROCESS, str(out_file)],
            env=dict(env, MBRL_JAX_PROCESS_ID=str(i)),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=600) for p in procs]
    for p, (stdout, stderr) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, stdout[-2000:] + stderr[-3000:]
    result = json.loads(out_file.read_text())
    assert result["devices"] == 2
    import jax
    import numpy as np

    from mbrl_jax import envs
    from mbrl_jax.agents import dyna_q

    env, params = envs.make("DynaMaze")
    train = dyna_q.make_train(dyna_q.Config(num_steps=200, planning_steps=5), env, params)
    want = jax.jit(jax.vmap(train))(jax.random.split(jax.random.key(0), 5)).metrics.reward
    np.testing.assert_array_equal(np.asarray(result["reward"]), np.asarray(want))


@pytest.mark.parametrize(
    "env,match",
    [
        ({"MBRL_JAX_COORDINATOR": "127.0.0.1:1234"}, "missing MBRL_JAX_NUM_PROCESSES"),
        (
            {
                "MBRL_JAX_COORDINATOR": "x:1",
                "MBRL_JAX_NUM_PROCESSES": "2",
                "MBRL_JAX_PROCESS_ID": "2",
            },
            "must be in",
        ),
        (
            {
                "MBRL_JAX_COORDINATOR": "x:1",
                "MBRL_JAX_NUM_PROCESSES": "two",
                "MBRL_JAX_PROCESS_ID": "0",
            },
            "integers",
        ),
    ],
)
def test_half_given_distributed_settings_are_refused(env, match):
    from mbrl_jax.core.sharding import initialize_distributed

    with pytest.raises(ValueError, match=match):
        initialize_distributed(env)
    assert initialize_distributed({}) is False
