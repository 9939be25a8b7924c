"""``mrs sweep FILE``: run a W&B sweep spec (online with an agent, or offline locally)."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep", help="run a W&B sweep spec (configs/sweeps/*.yaml), online or offline",
        description="Run a sweep in W&B's YAML format. Online (logged in, or WANDB_MODE=online): "
                    "registered with W&B and run by wandb.agent. Otherwise locally: grid, seeded "
                    "random, or bayes via optuna TPE; each trial an offline W&B run. Trials are "
                    "selected on the spec's validation metric; the selected trial is tested "
                    "once. Re-running the same command resumes a killed sweep.")
    p.add_argument("spec", metavar="FILE", help="sweep YAML (method, metric, parameters, ...)")
    p.add_argument("--count", type=int, default=None,
                   help="trials in total (default: the whole grid; random/bayes: run_cap)")
    p.add_argument("--out", default=None,
                   help="sweep directory (default: runs/sweeps/<spec name>)")
    p.add_argument("--no-wandb", action="store_true", help="write no W&B files at all")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="fixed train-config override for every trial, e.g. data.dir=out/x")
    p.add_argument("--seed", type=int, default=0, help="seed of random/bayes proposals")
    p.add_argument("--project", default=None,
                   help="W&B project (default: the base config's wandb.project, i.e. mrs)")
    p.add_argument("--entity", default=None, help="W&B entity (team or user)")
    p.add_argument("--offline", action="store_true",
                   help="run locally even when logged in to W&B")
    p.add_argument("--dry-run", action="store_true",
                   help="validate the spec and list the trials (grid/random) without running")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mrs.sweep.runner import Sweep

    out = args.out or str(Path("runs") / "sweeps" / Path(args.spec).stem)
    sweep = Sweep(args.spec, out, count=args.count, use_wandb=not args.no_wandb,
                  overrides=args.overrides, seed=args.seed, project=args.project,
                  entity=args.entity)
    if args.dry_run:
        return _dry_run(sweep)
    result = sweep.run(online=False if args.offline else None)
    sel = result["selected"]
    print(f"sweep {sweep.spec.name}: {len(result['trials'])} trials in {out}; summary: "
          f"{Path(out) / 'summary.md'}")
    if sel:
        print(f"selected {sel['id']}: {sweep.spec.metric}={sel['value']:.4f} {sel['params']}")
    return 0 if sel else 1


def _dry_run(sweep) -> int:
    """Print what would run; nothing is written."""
    from mrs.sweep.propose import make_proposer

    spec, st = sweep.spec, sweep.state
    print(f"sweep {spec.name}: method {spec.method}, {sweep.count} trials, selecting "
          f"{spec.goal} {spec.metric}; fixed: {spec.fixed or '-'}")
    if spec.method == "bayes":
        print("bayes: each trial's parameters depend on the previous results")
        return 0
    proposer = make_proposer(spec, sweep.seed)
    for k in range(sweep.count):
        tid = st.trial_id(k)
        done = st.trials.get(tid, {}).get("status", "todo")
        params = {p.key: proposer.propose(k)[p.key] for p in spec.swept}
        print(f"{tid} [{done}] " + " ".join(f"{key}={v}" for key, v in params.items()))
    return 0
