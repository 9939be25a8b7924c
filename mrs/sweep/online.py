"""Online sweeps: the spec is registered with W&B (``wandb.sweep``) and an agent runs its trials
(``wandb.agent``), so the sweep appears in the W&B UI with W&B's own controller choosing the
parameters. Each trial still gets a local run directory and a record in ``state.json``, so
selection, the single test evaluation and the summary work exactly as offline.
"""
from __future__ import annotations

import logging

from mrs.errors import MrsError
from mrs.sweep.trial import TrialLogger

log = logging.getLogger(__name__)


def run_agent(sweep) -> None:
    import wandb

    from mrs.tracking.wandb_logger import WandbLogger

    st, spec = sweep.state, sweep.spec
    for t in st.trials.values():   # W&B marks a killed agent's run crashed; so do we
        if t["status"] == "running":
            st.fail_trial(t["id"], "interrupted (online trials are not resumed)", 0.0)
    if st.sweep_id is None:
        try:
            st.sweep_id = wandb.sweep(spec.wandb_config(), entity=sweep.entity,
                                      project=sweep.project)
        except Exception as e:  # no network, bad key, spec refused by the server
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise MrsError(f"{spec.path}: W&B did not accept the sweep ({msg}); run it "
                           f"locally with --offline (or WANDB_MODE=offline)") from None
        log.info("registered W&B sweep %s (project %s)", st.sweep_id, sweep.project)
    remaining = sweep.count - sum(st.done(tid) for tid in st.trials)
    if remaining <= 0:
        return

    def trial() -> None:
        tid = st.trial_id(st.next_index())
        inner = WandbLogger(project=sweep.project, entity=sweep.entity, job_type="sweep-trial",
                            reinit="finish_previous")
        inner.start({}, sweep.trial_dir(tid), name=f"{spec.name}-{tid}", group=spec.name,
                    tags=["sweep"])
        if inner.run is None:
            raise MrsError(f"sweep {st.sweep_id}: the agent's W&B run did not start")
        config = inner.run.config
        missing = [p.key for p in spec.swept if p.key not in config]
        if missing:
            inner.finish()
            raise MrsError(f"sweep {st.sweep_id}: W&B gave no value for parameter {missing[0]!r}")
        params = {**spec.fixed, **{p.key: config[p.key] for p in spec.swept}}
        sweep.run_trial(tid, params, logger=TrialLogger(inner, started=True))

    wandb.agent(st.sweep_id, function=trial, count=remaining, entity=sweep.entity,
                project=sweep.project)
