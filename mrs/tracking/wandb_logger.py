"""Weights & Biases implementation of ``RunLogger``: offline by default, quiet, never fatal.

Mode (``resolve_mode``): ``$WANDB_MODE`` when the user set it; otherwise ``online`` when an API
key is available (``$WANDB_API_KEY`` or ``~/.netrc``, i.e. after ``wandb login``); otherwise
``offline``, so tracking works with no account and no network. The W&B files go inside the run
directory (``<run_dir>/wandb/offline-run-*``), beside config.yaml and metrics.json, which the
trainer writes regardless: W&B is never the only copy. Upload offline runs later with
``wandb sync <run_dir>/wandb/offline-run-*``.

A failing W&B (no disk space, a broken install, a server error) must never kill training: the
first error is logged once as a warning and the logger turns into a no-op.
"""
from __future__ import annotations

import logging
import netrc
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mrs.tracking.provenance import provenance

log = logging.getLogger(__name__)

# W&B's API hosts: wandb >= 0.2x defaults to CoreWeave's Forge front end, older ones (and
# `wandb login` with those) to api.wandb.ai; a netrc entry for either means logged in.
DEFAULT_HOSTS = ("api.wandb.ai", "api.forge.coreweave.com")
_warned = False  # one warning per process, not one per epoch or per trial


def logged_in() -> bool:
    """True when W&B has credentials: ``$WANDB_API_KEY`` or a netrc entry for the W&B host
    (``$WANDB_BASE_URL``'s, else W&B's default hosts), as ``wandb login`` writes."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    base = os.environ.get("WANDB_BASE_URL")
    hosts = [urlsplit(base).netloc] if base else list(DEFAULT_HOSTS)
    path = os.environ.get("NETRC") or os.path.expanduser("~/.netrc")
    try:
        entries = netrc.netrc(path)
    except (OSError, netrc.NetrcParseError):
        return False
    return any(h and entries.authenticators(h) is not None for h in hosts)


def resolve_mode() -> str:
    """``online`` | ``offline`` | ``disabled``: the user's ``$WANDB_MODE`` wins, then login state."""
    mode = os.environ.get("WANDB_MODE", "").strip().lower()
    if mode in ("online", "offline", "disabled", "shared"):
        return mode
    if mode in ("dryrun",):
        return "offline"
    if os.environ.get("WANDB_DISABLED", "").lower() in ("1", "true"):
        return "disabled"
    return "online" if logged_in() else "offline"


def flatten(d: dict[str, Any], prefix: str = "", sep: str = "/") -> dict[str, Any]:
    """``{"all": {"recall@20": 0.1}}`` -> ``{"all/recall@20": 0.1}`` (W&B summary keys)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{sep}{k}" if prefix else str(k)
        if isinstance(v, dict):
            out.update(flatten(v, key, sep))
        else:
            out[key] = v
    return out


class WandbLogger:
    """Sends a run's config, epochs, summary, tables and plots to W&B. See the module docstring.

    Args:
        project: W&B project. ``entity``: team or user (None: the account's default).
        mode: force ``online``/``offline``/``disabled``; None resolves it (``resolve_mode``).
        job_type: W&B job type (``train``, ``compare``, ``sweep-trial``).
        tags / notes: attached to every run this logger opens.
        reinit: ``create_new`` lets several runs live in one process (``mrs compare``, offline
            sweeps); a W&B sweep agent's trial uses ``finish_previous`` so ``wandb.run`` is set.
    """

    def __init__(self, project: str = "mrs", entity: str | None = None, mode: str | None = None,
                 job_type: str = "train", tags: list[str] | None = None,
                 notes: str | None = None, reinit: str = "create_new") -> None:
        self.project, self.entity, self.mode, self.reinit = project, entity, mode, reinit
        self.job_type, self.tags, self.notes = job_type, list(tags or []), notes
        self.run = None          # the wandb Run while open
        self._failed = False     # after the first W&B error every call is a no-op
        self._wandb = None

    # -- RunLogger ------------------------------------------------------------------------------
    def start(self, config: dict[str, Any], run_dir: Path, name: str | None = None,
              group: str | None = None, tags: list[str] | None = None) -> None:
        if self.run is not None:
            self.finish()
        self._failed = False  # each run gets its own chance; the warning is still shown once
        run_dir = Path(run_dir)
        mode = self.mode or resolve_mode()
        if mode == "disabled":
            return
        full = dict(config)
        full["provenance"] = provenance()

        def init():
            os.environ.setdefault("WANDB_SILENT", "true")
            if os.environ.get("WANDB_MODE", None) == "":
                del os.environ["WANDB_MODE"]  # wandb rejects an empty mode; treat it as unset
            import wandb  # heavy; only when tracking is on
            self._wandb = wandb
            run_dir.mkdir(parents=True, exist_ok=True)
            settings = wandb.Settings(silent=True, console="off", save_code=False,
                                      x_disable_stats=True)
            self.run = wandb.init(project=self.project, entity=self.entity, dir=str(run_dir),
                                  config=full, name=name, group=group,
                                  tags=self.tags + list(tags or []), notes=self.notes,
                                  job_type=self.job_type, mode=mode, reinit=self.reinit,
                                  settings=settings)
            # Per-epoch scalars are plotted against ``epoch``, not W&B's internal step.
            self.run.define_metric("epoch")
            self.run.define_metric("*", step_metric="epoch")

        self._safe("init", init)

    def update_config(self, config: dict[str, Any]) -> None:
        """Add to the open run's config (a sweep trial: the agent's parameters come first)."""
        if self.run is not None:
            self._safe("config", lambda: self.run.config.update(
                {**config, "provenance": provenance()}, allow_val_change=True))

    def log_epoch(self, epoch: int, values: dict[str, float]) -> None:
        if self.run is not None:
            self._safe("log", lambda: self.run.log({"epoch": epoch, **flatten(values)}))

    def log_summary(self, metrics: dict[str, Any]) -> None:
        if self.run is not None:
            self._safe("summary", lambda: self.run.summary.update(flatten(metrics)),
                       fatal=False)

    def log_table(self, name: str, columns: list[str], rows: list[list[Any]]) -> None:
        if self.run is not None:
            def table():
                self.run.log({name: self._wandb.Table(columns=list(columns),
                                                      data=[list(r) for r in rows])})
            self._safe(f"table {name}", table, fatal=False)

    def log_image(self, name: str, path: Path) -> None:
        if self.run is not None:
            if not Path(path).is_file():  # a missing plot costs that plot, not the W&B run
                log.warning("W&B image %s: %s not found; skipped", name, path)
                return

            def image():
                self.run.log({name: self._wandb.Image(str(path))})
            self._safe(f"image {name}", image, fatal=False)

    def finish(self) -> None:
        run, self.run = self.run, None
        if run is not None:
            self._safe("finish", run.finish)

    # -- internals ------------------------------------------------------------------------------
    @property
    def run_path(self) -> Path | None:
        """Directory of the open run's W&B files (``.../wandb/offline-run-...``), if any."""
        if self.run is None:
            return None
        try:
            return Path(self.run.dir).parent  # run.dir is <run path>/files
        except Exception:
            return None

    def _safe(self, what: str, fn, fatal: bool = True) -> None:
        """Run one W&B call. A failure is logged (as a warning once per process) and, when
        ``fatal`` (init, log, finish), ends W&B for this run; a bad table or image costs only
        that item."""
        if self._failed:
            return
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - tracking must never stop training
            global _warned
            level = logging.DEBUG if _warned else logging.WARNING
            _warned = True
            if not fatal:
                log.log(level, "W&B %s failed (%s: %s); skipped", what, type(e).__name__, e)
                return
            self._failed = True
            log.log(level, "W&B %s failed (%s: %s); continuing without W&B, the run directory "
                    "still holds every result", what, type(e).__name__, e)
            run, self.run = self.run, None
            if run is not None and what != "finish":
                try:
                    run.finish(exit_code=1)
                except Exception:
                    pass
