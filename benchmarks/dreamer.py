"""Dreamer throughput beside the machine's matmul and conv ceilings, measured in the same run.

Prints JSON:
- the practical matmul ceiling (a large ``jnp.dot``) and conv ceiling (a
  stride-2 4 x 4 conv of the pixel encoder's first layer at batch 1,024), GFLOP/s;
- world-model updates per second (``rssm_update`` on a 16 x 64 batch of
  ``Pendulum-v1``-shaped windows) and actor-critic updates per second
  (``ac_update``: imagination of 15 steps from N posterior states,
  backpropagated through the model, plus the critic) at model size ``s``
  (DreamerV3's, 32 x 32 latents, imagination from all 1,024 states) and at
  Dreamer's CPU default (``tiny``, 16 x 16 latents, 256 starts), each as GFLOP/s
  and as a fraction of the matmul ceiling timed alternately with it;
- imagined states per second (the actor acting through the prior, no gradient);
- environment frames per second of the pixel wrapper (``CartPole-v1`` drawn at
  64 x 64 RGB) at 1, 1,024 and 16,384 environments;
- the compile time of a whole default Dreamer run (``make_train``, jitted).

FLOP counts are analytic: a dense layer is 2 x inputs x outputs per item
forward, a backward pass twice its forward pass; LayerNorm, activations and
sampling are not counted (so the fractions understate the work done).

    python benchmarks/dreamer.py [--quick] [--out benchmarks/results/dreamer_cpu.json]
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from common import argument_parser, compile_and_time, emit  # noqa: E402
from pets import matmul_ceiling, paired_with_matmul  # noqa: E402

import mbrl_jax  # noqa: E402
from mbrl_jax import envs  # noqa: E402
from mbrl_jax.agents import actor_critic as ac  # noqa: E402
from mbrl_jax.agents import dreamer  # noqa: E402
from mbrl_jax.core.rollout import rollout  # noqa: E402
from mbrl_jax.core.types import Transition  # noqa: E402
from mbrl_jax.envs.pixels import PixelObservation  # noqa: E402
from mbrl_jax.models import rssm  # noqa: E402

OBS_DIM, ACTION_DIM = 3, 1  # Pendulum-v1


def dense(i: int, o: int) -> float:
    return 2.0 * i * o


def mlp(i: int, hidden: int, layers: int, out: int | None) -> float:
    """Forward FLOPs of a :class:`mbrl_jax.models.rssm.NormMLP` on one item."""
    flops = dense(i, hidden) + (layers - 1) * dense(hidden, hidden)
    return flops + (dense(hidden, out) if out else 0.0)


def step_flops(cfg: rssm.RSSMConfig, acfg: ac.ACConfig) -> dict:
    """Forward FLOPs per item of each piece of the world model and the actor-critic."""
    latent, feat, h = cfg.stoch * cfg.classes, cfg.feature_size, cfg.hidden
    transition = (
        dense(latent + cfg.action_size, h)
        + dense(h + cfg.deter, 3 * cfg.deter)
        + mlp(cfg.deter, h, 1, latent)
    )
    return {
        "transition": transition,
        "posterior": mlp(cfg.deter + h, h, 1, latent),
        "encoder": mlp(OBS_DIM, h, cfg.layers, None),
        "decoder": mlp(feat, h, cfg.layers, OBS_DIM),
        "heads": mlp(feat, h, cfg.layers, cfg.num_bins) + mlp(feat, h, cfg.layers, 1),
        "actor": mlp(feat, acfg.hidden, acfg.layers, 2 * cfg.action_size),
        "critic": mlp(feat, acfg.hidden, acfg.layers, acfg.num_bins),
    }


def world_model_gflop(f: dict, batch: int, length: int) -> float:
    # Per step: both observations encoded, a restart state (transition from zeros
    # + posterior), the filtering step, decoder and heads; forward + backward.
    forward = 2 * f["encoder"] + 2 * (f["transition"] + f["posterior"]) + f["decoder"] + f["heads"]
    return 3 * forward * batch * length / 1e9


def actor_critic_gflop(f: dict, starts: int, horizon: int) -> float:
    # Imagination forward and backward: the actor's weights get gradients (3x
    # its forward pass), the model's are held fixed, so its transition and
    # heads pass gradients to their inputs only (2x); the actor's log-std
    # again in the objective (forward + backward); the slow critic on H + 1
    # states and H states; the critic forward + backward on H states.
    imagine = 3 * f["actor"] + 2 * (f["transition"] + f["heads"])
    per_start = horizon * (imagine + 3 * f["actor"] + f["critic"] + 3 * f["critic"])
    per_start += (horizon + 1) * f["critic"]
    return per_start * starts / 1e9


def configs(size: str, stoch: int, starts: int | None):
    cfg = dreamer.Config(model_size=size, stoch=stoch, classes=stoch, imagine_starts=starts)
    spec = dreamer.Spec((OBS_DIM,), False, ACTION_DIM, None, None, (ACTION_DIM,))
    return cfg, dreamer.model_config(cfg, spec), cfg.actor_critic(discrete=False)


def update_rates(size: str, stoch: int, starts: int | None, ceiling_size: int, rounds: int):
    cfg, mcfg, acfg = configs(size, stoch, starts)
    b, t = cfg.batch_size, cfg.batch_length
    n = starts or b * t
    flops = step_flops(mcfg, acfg)
    model = rssm.rssm_model(mcfg)
    state = model.init(jax.random.key(0))
    behaviour = ac.ac_init(acfg, jax.random.key(1), mcfg.feature_size, ACTION_DIM, False)
    k = jax.random.split(jax.random.key(2), 3)
    window = Transition(
        jax.random.normal(k[0], (b, t, OBS_DIM)),
        jax.random.uniform(k[1], (b, t, ACTION_DIM), minval=-1.0, maxval=1.0),
        jax.random.normal(k[2], (b, t)),
        jax.random.normal(k[0], (b, t, OBS_DIM)),
        jnp.zeros((b, t), bool),
        jnp.zeros((b, t), bool),
    )
    observed = jax.jit(lambda key: rssm.observe(mcfg, state.params, key, window))(k[1])
    start = jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:])[:n], observed.states)

    def touch(tree):
        # A scalar that depends on every leaf, so XLA cannot drop the update
        # (returning a loss alone lets it eliminate the backward pass).
        return sum(
            jnp.sum(leaf)
            for leaf in jax.tree.leaves(tree)
            if jnp.issubdtype(leaf.dtype, jnp.floating)
        )

    def wm(key):
        new, (_, metrics) = rssm.rssm_update(mcfg, state, key, window)
        return metrics["recon_loss"] + touch(new)

    def behaviour_update(key):
        new, metrics = ac.ac_update(
            acfg, ACTION_DIM, False, behaviour, model, state, rssm.feature, key, start, jnp.ones(n)
        )
        return metrics["actor_loss"] + touch(new)

    def imagine(key):
        def policy(pk, states, _):
            feat = rssm.feature(states)
            return ac.sample_action(acfg, ACTION_DIM, False, behaviour.actor_params, pk, feat)

        roll = rollout(model, policy, state, key, start, acfg.horizon, keep_trajectory=False)
        return roll.discounted_return.sum()

    wm_gflop = world_model_gflop(flops, b, t)
    ac_gflop = actor_critic_gflop(flops, n, acfg.horizon)
    imagine_gflop = n * acfg.horizon * (flops["actor"] + flops["transition"] + flops["heads"]) / 1e9
    out = {"model_size": size, "latents": f"{stoch}x{stoch}", "batch": [b, t], "starts": n}
    for name, fn, gflop in (
        ("world_model", wm, wm_gflop),
        ("actor_critic", behaviour_update, ac_gflop),
        ("imagination", imagine, imagine_gflop),
    ):
        timing = paired_with_matmul(fn, jax.random.key(3), gflop, ceiling_size, rounds)
        out[name] = {
            "per_s": 1.0 / timing["run_s"],
            "ms": 1e3 * timing["run_s"],
            "gflop": gflop,
            "gflops": gflop / timing["run_s"],
            "fraction_of_matmul_ceiling": timing["fraction_of_matmul_ceiling"],
            "fraction_best_vs_best": timing["fraction_best_vs_best"],
            "compile_s": timing["compile_s"],
        }
    out["imagination"]["imagined_states_per_s"] = n * acfg.horizon / out["imagination"]["ms"] * 1e3
    out["update_ms"] = out["world_model"]["ms"] + out["actor_critic"]["ms"]
    return out


def conv_ceiling(quick: bool) -> float:
    """GFLOP/s of the pixel encoder's first layer (4 x 4, stride 2, 3 -> 32 channels)
    on a batch of 64 x 64 images, the conv rate the encoder can hope for."""
    batch = 64 if quick else 1024
    images = jnp.ones((batch, 64, 64, 3), jnp.float32)
    kernel = jnp.ones((4, 4, 3, 32), jnp.float32)

    def conv(x):
        return jax.lax.conv_general_dilated(
            x, kernel, (2, 2), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )

    timing = compile_and_time(conv, images, repeats=3, min_seconds=0.3)
    flops = 2.0 * batch * 32 * 32 * 32 * 4 * 4 * 3
    return flops / timing["run_s"] / 1e9


def pixel_rates(counts: tuple[int, ...], steps: int) -> list[dict]:
    env, params = envs.make("CartPole-v1")
    pixel_env = PixelObservation(env, size=64)
    v_reset = jax.vmap(pixel_env.reset, in_axes=(0, None))
    v_step = jax.vmap(pixel_env.step, in_axes=(0, 0, 0, None))
    rates = []
    for n in counts:

        def run(key, n=n):
            reset_key, loop_key = jax.random.split(key)
            _, state = v_reset(jax.random.split(reset_key, n), params)

            def body(state, k):
                action_key, step_key = jax.random.split(k)
                action = jax.random.randint(action_key, (n,), 0, 2)
                obs, state, *_ = v_step(jax.random.split(step_key, n), state, action, params)
                # Every pixel of every frame is summed: a slice would let XLA
                # draw only the pixels it reads.
                return state, obs.astype(jnp.int32).sum()

            return jax.lax.scan(body, state, jax.random.split(loop_key, steps))[1].sum()

        timing = compile_and_time(run, jax.random.key(0), repeats=3, min_seconds=0.2)
        rates.append(
            {
                "envs": n,
                "frames_per_s": n * steps / timing["run_s"],
                "compile_s": timing["compile_s"],
            }
        )
        print(f"pixels, {n} envs: {rates[-1]['frames_per_s']:.0f} frames/s", file=sys.stderr)
    return rates


def main() -> None:
    parser = argument_parser(__doc__)
    args = parser.parse_args()
    size = 512 if args.quick else 2048
    rounds = 2 if args.quick else 5
    results = {"matmul_gflops": matmul_ceiling(size), "conv_gflops": conv_ceiling(args.quick)}
    print(
        f"ceilings: matmul {results['matmul_gflops']:.0f}, conv {results['conv_gflops']:.0f} "
        "GFLOP/s",
        file=sys.stderr,
    )
    cases = [("tiny", 16, 256)] if args.quick else [("tiny", 16, 256), ("s", 32, None)]
    results["updates"] = []
    for model_size, stoch, starts in cases:
        rates = update_rates(model_size, stoch, starts, size, rounds)
        results["updates"].append(rates)
        print(
            f"{model_size}: world model {rates['world_model']['ms']:.0f} ms "
            f"({rates['world_model']['fraction_of_matmul_ceiling']:.0%}), actor-critic "
            f"{rates['actor_critic']['ms']:.0f} ms "
            f"({rates['actor_critic']['fraction_of_matmul_ceiling']:.0%}), "
            f"{rates['imagination']['imagined_states_per_s']:.0f} imagined states/s",
            file=sys.stderr,
        )
    results["pixel_env"] = pixel_rates((1, 64) if args.quick else (1, 1024, 16384), 16)
    env, params = envs.make("Pendulum-v1")
    config = dreamer.Config(num_steps=2000 if args.quick else 20_000)
    start = time.perf_counter()
    mbrl_jax.jit(dreamer.make_train(config, env, params)).lower(jax.random.key(0)).compile()
    results["dreamer_compile_s"] = time.perf_counter() - start
    results["config"] = {
        "num_steps": config.num_steps,
        "model_size": config.model_size,
        "train_ratio": config.effective_train_ratio,
        "updates_per_unit": config.updates_per_unit,
        "imagine_starts": config.imagine_starts,
    }
    emit(results, args.out)


if __name__ == "__main__":
    main()
