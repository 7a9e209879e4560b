"""The command line: `lightning`, `dfgen` and `python -m lightning_modules.cli` all run this.

    lightning fit --config configs/singan/hubble.yaml --model.iters_per_scale=500
    lightning fit --config configs/singan/hubble.yaml --ckpt_path last        # resume where it stopped
    lightning predict --config configs/singan/hubble.yaml --ckpt_path last

Everything a run writes goes under `trainer.default_root_dir`: checkpoints in
`checkpoints/` (where `--ckpt_path last` finds them), CSV and TensorBoard logs when
no logger is configured, and predictions.

A run can be stopped at any moment and resumed exactly: SIGINT (Ctrl-C), SIGTERM and SIGUSR1
stop it at the end of the current iteration with `last.ckpt` saved there, and the command
exits with 128 + the signal's number (130, 143, 138; after SIGUSR1 a SLURM job is requeued).
Only one `fit` at a time writes into a `default_root_dir`. An expected error (a bad file or
setting) prints one line and exits with 1 (2 for a command-line error); DFGEN_TRACEBACK=1
shows the whole traceback instead.

A config file given to `--config` may build on others: a top-level `base:` names a file (or a
list of files, merged in order) relative to the including file, whose settings it inherits and
overrides (see `composed_config`).
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
from argparse import ArgumentError
from pathlib import Path
from types import FrameType
from typing import Any

import yaml
from jsonargparse import Namespace, get_loader
from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.utilities.exceptions import MisconfigurationException, SIGTERMException

import callbacks  # noqa: F401  (registers the project's callbacks for short class names)
import datamodules  # noqa: F401
import lightning_modules  # noqa: F401
from callbacks.checkpoint import ResumableCheckpoint, iterations_done
from dfgen.checkpoint_files import load_checkpoint_file
from dfgen.settings import former_setting_hint, renamed_settings

try:
    import fcntl
except ImportError:  # Windows: runs are not locked
    fcntl = None

LOCK_FILE = "fit.lock"
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGUSR1") if hasattr(signal, name))


class RunFolderBusyError(RuntimeError):
    """Another `fit` is writing into the same `default_root_dir`."""


EXPECTED_ERRORS = (ValueError, OSError, ArgumentError, MisconfigurationException, RunFolderBusyError)


def is_first_process() -> bool:
    """True in the process a user started: the rank variables of DDP children, torchrun and SLURM
    tasks are 0 or unset."""
    return all(os.environ.get(name, "0") == "0" for name in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"))


def say(message: str) -> None:
    """One line on stderr, from the first process only."""
    if is_first_process():
        print(message, file=sys.stderr, flush=True)


def wandb_run_id(root: Path, resuming: bool) -> str:
    """The W&B run id of the run under `root`: the stored one when resuming, else a new one.

    Only the first process writes the file; Lightning starts the other DDP processes with
    LOCAL_RANK/NODE_RANK set, and only rank 0 talks to W&B.
    """
    path = root / "wandb_run_id"
    if resuming and path.is_file():
        return path.read_text().strip()
    run_id = secrets.token_hex(4)
    if is_first_process():
        root.mkdir(parents=True, exist_ok=True)
        path.write_text(run_id)
    return run_id


def run_root(config: Any) -> Path:
    """`trainer.default_root_dir` of a subcommand's parsed config (the working directory when unset)."""
    return Path(config.trainer.default_root_dir or os.getcwd())


def last_checkpoint(config: Any) -> Path | None:
    """The newest `last*.ckpt` where the run's checkpoint callbacks write (as Lightning's "last" lookup)."""
    folders = {run_root(config) / "checkpoints"}
    for callback in config.trainer.callbacks or []:
        dirpath = callback.get("init_args", {}).get("dirpath") if hasattr(callback, "get") else None
        if dirpath:
            folders.add(Path(dirpath))
    candidates = [path for folder in folders for path in folder.glob("last*.ckpt") if path.is_file()]
    return max(candidates, key=lambda path: path.stat().st_mtime) if candidates else None


def model_settings(config: Any) -> dict[str, Any]:
    """The model's init_args of a subcommand's parsed config, as a plain dict."""
    init_args = config.model.get("init_args") if config.get("model") is not None else None
    return init_args.as_dict() if init_args is not None else {}


def changed_settings(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """`name=given->checkpoint's` for every setting given (not None) that the checkpoint replaced."""
    return [
        f"{name}={before[name]!r}->{after.get(name)!r}"
        for name in sorted(before)
        if before[name] is not None and name in after and _plain(after[name]) != _plain(before[name])
    ]


def _plain(value: Any) -> Any:
    """Tuples and lists compare equal (a checkpoint stores YAML lists for tuple settings)."""
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


class RunLock:
    """An exclusive lock on `<root>/fit.lock` while a `fit` writes into `root`.

    It is a `flock`, which the kernel releases when the process ends however it ends (kill -9
    included), so a killed run never leaves a lock behind. Only the first process of a
    multi-process run takes it.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._file = None

    def __enter__(self) -> RunLock:
        if fcntl is None or not is_first_process():
            return self
        self.root.mkdir(parents=True, exist_ok=True)
        handle = open(self.root / LOCK_FILE, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            handle.close()
            raise RunFolderBusyError(
                f"{self.root}: another `fit` is writing into this folder ({owner}); wait for it to end "
                "or give another --trainer.default_root_dir"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        self._file = handle
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


class StopOnSignal:
    """While `fit` trains, SIGINT, SIGTERM and SIGUSR1 ask the ResumableCheckpoint callbacks to stop
    at the end of the current iteration (where they save `last.ckpt`); a second Ctrl-C aborts at
    once, leaving the last checkpoint written before it. Outside training (set-up, sanity check)
    a signal acts as it did before.
    """

    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            self._previous = {signum: signal.signal(signum, self._handle) for signum in STOP_SIGNALS}
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGINT and self.received is not None:
            raise KeyboardInterrupt  # the second Ctrl-C: abort without waiting for the iteration's end
        checkpoints = [cb for cb in self.trainer.callbacks if isinstance(cb, ResumableCheckpoint)]
        if not any([checkpoint.request_stop(signum) for checkpoint in checkpoints]):
            return self._act_as_before(signum, frame)
        self.received = signum
        say(f"{signal.Signals(signum).name}: stopping at the end of this iteration and saving last.ckpt "
            "(Ctrl-C again aborts without saving)")  # fmt: skip

    def _act_as_before(self, signum: int, frame: FrameType | None) -> None:
        previous = self._previous.get(signum, signal.SIG_DFL)
        if callable(previous):
            previous(signum, frame)  # e.g. Python's SIGINT handler, which raises KeyboardInterrupt
        elif previous != signal.SIG_IGN:  # the default action (terminate), with the signal's exit status
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    @property
    def exit_code(self) -> int | None:
        return None if self.received is None else 128 + self.received


def requeue_slurm_job() -> None:
    """`scontrol requeue` the SLURM job this process runs in (if any): the requeued job resumes from last.ckpt."""
    array_job = os.environ.get("SLURM_ARRAY_JOB_ID")
    job = f"{array_job}_{os.environ['SLURM_ARRAY_TASK_ID']}" if array_job else os.environ.get("SLURM_JOB_ID")
    if not job:
        return
    try:
        result = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True, check=False)
    except OSError as error:
        say(f"could not requeue SLURM job {job}: {error}")
        return
    say(f"requeued SLURM job {job}" if result.returncode == 0 else f"could not requeue SLURM job {job}: "
        f"{(result.stderr or result.stdout).strip()}")  # fmt: skip


def trainer_callbacks(config: Any) -> list[Any]:
    """The callbacks a trainer config lists, less a progress bar that `enable_progress_bar=false`
    turns off, plus a ResumableCheckpoint when it lists no checkpoint callback: Lightning's default
    ModelCheckpoint would save only at an epoch's end, which a streamed run reaches only at its
    very end, so any run stops at an iteration's end and resumes exactly."""
    listed = config.get("callbacks") or []
    listed = listed if isinstance(listed, list) else [listed]
    if config.get("enable_progress_bar") is False:
        listed = [callback for callback in listed if not isinstance(callback, ProgressBar)]
    if config.get("enable_checkpointing") is not False and not any(isinstance(c, ModelCheckpoint) for c in listed):
        listed = [*listed, ResumableCheckpoint()]
    return listed


BASE_KEY = "base"


def composed_config(path: Path) -> dict[str, Any] | None:
    """The settings of the config file `path` merged on top of those of the files its top-level
    `base:` names, or None when it names none (jsonargparse then reads the file as usual).

    `base:` is a path, or a list of paths merged in order, relative to the directory of the file
    that names it; a base may have a base. The file's own settings override its bases': mappings
    merge key by key, any other value (a list included) replaces the base's. Every error names the
    file at fault.
    """
    try:
        settings = _yaml_content(path)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None  # jsonargparse says what is wrong with the file
    if not isinstance(settings, dict) or BASE_KEY not in settings:
        return None
    return _on_top_of_bases(path, settings, ())


def config_settings(path: str | os.PathLike) -> dict[str, Any]:
    """All the settings of the config file `path`, its bases merged in: what a script that reads a
    config for itself must use, since a task's file holds only its differences from its base."""
    path = Path(path)
    return composed_config(path) or _yaml_content(path)


def _on_top_of_bases(path: Path, settings: dict[str, Any], including: tuple[Path, ...]) -> dict[str, Any]:
    """`settings` (those of the file `path`, which the files `including` include in turn) merged on
    top of its bases."""
    bases = settings.pop(BASE_KEY, [])
    bases = [bases] if isinstance(bases, str) else bases
    if not isinstance(bases, list) or not all(isinstance(base, str) for base in bases):
        raise ValueError(f"{path}: `{BASE_KEY}:` must be a config file's path or a list of them, got {bases!r}")
    merged: dict[str, Any] = {}
    for base in bases:
        chain = (*including, path)
        base_path = path.parent / base
        merged = merged_settings(merged, _on_top_of_bases(base_path, _base_settings(base_path, chain), chain))
    return merged_settings(merged, settings)


def _base_settings(path: Path, chain: tuple[Path, ...]) -> dict[str, Any]:
    """The settings of the base file `path` that the last file of `chain` names."""
    including = chain[-1]
    if any(path.resolve() == other.resolve() for other in chain):
        cycle = " -> ".join(str(file) for file in (*chain, path))
        raise ValueError(f"{including}: config files include each other in a cycle: {cycle}")
    if not path.is_file():
        raise FileNotFoundError(f"{including}: its {BASE_KEY} {path} is not a file")
    try:
        settings = _yaml_content(path)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise ValueError(f"{including}: its {BASE_KEY} {path} cannot be read: {error}") from None
    if not isinstance(settings, dict):
        raise ValueError(f"{including}: its {BASE_KEY} {path} is not a mapping of settings")
    return settings


def _yaml_content(path: Path) -> Any:
    """The YAML file `path` read as jsonargparse reads YAML (e.g. `1e-4` is a number)."""
    return get_loader("yaml")(path.read_text())


def merged_settings(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`base` with `override` on top: mappings merge key by key, other values (lists too) replace."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            value = merged_settings(merged[key], value)
        merged[key] = value
    return merged


class ComposingArgumentParser(LightningArgumentParser):
    """LightningArgumentParser whose config files may build on others through `base:`.

    A composed file's settings are parsed as a config given as text: a relative path in them
    (the project's configs write every data, asset and run path relative to the working
    directory) keeps its meaning, but a nested config file named in them (`model: model.yaml`)
    is looked for from the working directory, not from the file's directory."""

    def parse_path(self, path: str | os.PathLike, *args: Any, **kwargs: Any) -> Namespace:
        """A config file with a `base:` is parsed as its composed settings (`composed_config`),
        through the parser's loader, so that interpolations see the merged settings; any other
        file as jsonargparse parses it."""
        composed = composed_config(Path(os.fspath(path)))
        if composed is None:
            return super().parse_path(path, *args, **kwargs)
        content = yaml.safe_dump(composed, sort_keys=False, allow_unicode=True)
        return self.parse_string(content, os.path.basename(path), *args, **kwargs)


class DFGenCLI(LightningCLI):
    """LightningCLI whose runs are resumable and keep all their outputs under one root."""

    def __init__(
        self, *args: Any, parser_class: type[LightningArgumentParser] = ComposingArgumentParser, **kwargs: Any
    ) -> None:
        """LightningCLI's arguments; its config files may build on others (ComposingArgumentParser)."""
        super().__init__(*args, parser_class=parser_class, **kwargs)

    def _parse_ckpt_path(self) -> None:
        """`--ckpt_path last` becomes the file it names before Lightning reads the checkpoint's
        hyper-parameters from it (Lightning does that for explicit paths only), and a model setting
        that the checkpoint replaces is reported. `predict` and `test` need a checkpoint."""
        subcommand = self.config.get("subcommand")
        if not subcommand:
            return
        config = self.config[subcommand]
        if config.get("ckpt_path") == "last":
            path = last_checkpoint(config)
            if path is not None:
                config.ckpt_path = str(path)
            elif subcommand != "fit":
                raise FileNotFoundError(
                    f"--ckpt_path last: no last*.ckpt under {run_root(config) / 'checkpoints'}; "
                    "train first or give a checkpoint file"
                )
        if subcommand in ("predict", "test") and not config.get("ckpt_path"):
            raise ValueError(
                f"{subcommand} needs --ckpt_path: a checkpoint file, or `last` for the newest last*.ckpt "
                f"in {run_root(config) / 'checkpoints'} (without one, an untrained model's outputs would be written)"
            )
        before = model_settings(config)
        self._read_checkpoint_settings(subcommand)
        after = model_settings(self.config[subcommand])
        replaced = changed_settings(before, after)
        if replaced:
            say(f"--ckpt_path {config.ckpt_path}: the checkpoint's model settings replace the given "
                f"{', '.join(replaced)}")  # fmt: skip

    def _read_checkpoint_settings(self, subcommand: str) -> None:
        """Lightning's `_parse_ckpt_path`: the model settings saved in the checkpoint replace the
        config's. Read safely (`load_checkpoint_file`), and a setting saved under a name it had in
        an earlier version is read under its name now (`renamed_settings`)."""
        path = self.config[subcommand].get("ckpt_path")
        if not path or not Path(path).is_file():
            return
        saved = dict(load_checkpoint_file(path, "a checkpoint of this project").get("hyper_parameters") or {})
        saved.pop("_instantiator", None)
        if not saved:
            return
        settings = renamed_settings(saved)
        if "_class_path" in settings:
            settings = {"class_path": settings.pop("_class_path"), "dict_kwargs": settings}
        self.config = self.parser.parse_object({subcommand: {"model": settings}}, self.config)

    def before_instantiate_classes(self) -> None:
        """A W&B logger without an explicit id resumes the run it logged to when `--ckpt_path` is given."""
        config = self.config.get(self.subcommand) if self.subcommand else self.config
        if config is None or self.subcommand != "fit":
            return
        loggers = config.trainer.logger if isinstance(config.trainer.logger, list) else [config.trainer.logger]
        root = run_root(config)
        for logger in loggers:
            is_wandb = getattr(logger, "class_path", "").endswith("WandbLogger")
            if not is_wandb:
                continue
            if logger.init_args.get("save_dir") in (None, "."):
                logger.init_args.save_dir = str(root)
            if logger.init_args.get("id") is None:
                logger.init_args.id = wandb_run_id(root, resuming=bool(config.get("ckpt_path")))

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        config = self._get(self.config_init, "trainer", default={})
        root = Path(config.get("default_root_dir") or os.getcwd())
        if config.get("strategy") == "ddp" and not self.model.automatic_optimization:
            # Adversarial steps leave the other player's (and other scales') parameters out of
            # each backward, which plain DDP rejects; unused-parameter detection handles it.
            kwargs["strategy"] = DDPStrategy(find_unused_parameters=True)
        config["callbacks"] = trainer_callbacks(config)
        if config.get("logger") in (None, True):
            kwargs["logger"] = [TensorBoardLogger(root, name="tensorboard"), CSVLogger(root, name="csv")]
        trainer = super().instantiate_trainer(**kwargs)
        for checkpoint in trainer.checkpoint_callbacks:
            if checkpoint.dirpath is None:  # one fixed folder, so that `--ckpt_path last` finds it
                checkpoint.dirpath = str(root / "checkpoints")
        return trainer

    def fit(self, model: LightningModule, **kwargs: Any) -> None:
        """`Trainer.fit` holding the run folder's lock, stopping cleanly on a signal (see StopOnSignal)."""
        trainer = self.trainer
        with RunLock(Path(trainer.default_root_dir)), StopOnSignal(trainer) as stop:
            try:
                trainer.fit(model, **kwargs)
            except SIGTERMException:  # Lightning's own SIGTERM stop, raised between iterations
                stop.received = stop.received or signal.SIGTERM
            except SystemExit:  # Lightning exits with 1 after a second Ctrl-C
                if stop.exit_code is None:
                    raise
        if stop.exit_code is None:
            return
        say(f"stopped by {signal.Signals(stop.received).name} at iteration {iterations_done(trainer, model)}; "
            "resume with --ckpt_path last")  # fmt: skip
        if stop.received == getattr(signal, "SIGUSR1", None) and trainer.is_global_zero:
            requeue_slurm_job()
        raise SystemExit(stop.exit_code)


def build_cli(args: list[str] | dict | None = None) -> DFGenCLI:
    """Parse `args` (default: sys.argv), build the objects and run the subcommand.

    A command-line error raises ArgumentError (not SystemExit with a page of usage) so that
    `cli_main` can print it as one line.
    """
    return DFGenCLI(
        LightningModule,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        auto_configure_optimizers=False,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"parser_mode": "omegaconf", "exit_on_error": False},
        args=args,
    )


# jsonargparse's lines that say nothing about the problem itself
_NOISE = ("Does not validate against any of the Union subtypes", "Subtypes:", "Errors:", "Given value",
          "Expected a <class 'NoneType'>")  # fmt: skip


def one_line(error: BaseException) -> str:
    """The message of an expected error as one line: jsonargparse's nested explanations become
    `key.path: the innermost complaint`, and an error that a class's constructor raised is that error."""
    if isinstance(error.__cause__, EXPECTED_ERRORS) and "Does not validate against" in str(error):
        error = error.__cause__  # jsonargparse's wrapper of what a class's constructor raised
    keys, details = [], []
    for line in str(error).splitlines():
        text = line.strip().removeprefix("- ").strip()
        if not text or text.startswith(_NOISE) or text.startswith("Problem with given class_path"):
            continue
        key = re.fullmatch(r'Parser key "([^"]+)":\s*(.*)', text)
        if key:
            keys.append(key.group(1))
            text = key.group(2)
        if text:
            details.append(text)
    message = "; ".join(details) or type(error).__name__
    hint = former_setting_hint(str(error))
    message = f"{message} ({hint})" if hint else message
    return f"{'.'.join(keys)}: {message}" if keys else message


def cli_main(args: list[str] | dict | None = None) -> None:
    """Console-script entry point: exit status 0 on success, 1 (2 for the command line) after an
    expected error, printed as one line; DFGEN_TRACEBACK=1 raises it with its traceback instead."""
    if os.environ.get("DFGEN_TRACEBACK", "0") not in ("", "0"):
        build_cli(args)
        return
    try:
        build_cli(args)
    except Exception as error:  # only the expected errors end here; the rest is re-raised
        if not isinstance(error, EXPECTED_ERRORS):
            raise
        print(f"error: {one_line(error)}  (DFGEN_TRACEBACK=1 shows the traceback)", file=sys.stderr)
        raise SystemExit(2 if isinstance(error, ArgumentError) else 1) from None


if __name__ == "__main__":
    cli_main()
