"""The --out folder of a command, and the rules every command that writes one shares.

Standard library only: imports neither torch nor bpy. A command declares what it writes there:
`names`, top-level entries it owns whole (files, or a folder it always rewrites whole, such as a
saved model), and `folders`, subfolders whose entries it names by a pattern (frame files
`000012.png`, checkpoints `step-0000500`). The hidden temporary `.NAME.<anything>tmp<anything>` of
an owned NAME is owned too (`.000012.png.x8f3.tmp`, `.model.tmp`). `RunFolder` then applies:

1. An --out that is a file, or whose parent cannot be made, is a one-line error (`check`).
2. A folder whose config.json holds a different run is refused, naming the keys that differ
   (`differing_keys`, `other_run`); a non-empty folder that is no run of the command is refused
   (`not_a_run`, `refuse_existing`). Hidden files (.DS_Store) do not make a folder non-empty.
3. --overwrite removes only what the command owns (`clear`); every other file stays, a line says
   how many, and an owned subfolder left empty goes.
4. A command that builds its output in a temporary folder (`staged`) moves its entries in one by
   one, the file that marks the output complete removed first and moved in last. Such a command
   refuses a target holding files it did not write, even with --overwrite: its folder is a
   report, so foreign files there mostly mean a mistyped --out, and refusing before the run is
   cheap where the run may take hours. The swap still never touches a foreign file, so one that
   appears during the run survives it.

Errors are raised as the command's own error class (a `synth.UserError`), so the CLI prints them
as one line and callers keep catching what they caught before.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping

from synth import UserError


def _owned(pattern: str) -> re.Pattern:
    """Names matching `pattern`, and the hidden temporaries synth writes them through."""
    return re.compile(rf"(?:{pattern})|\.(?:{pattern})\..*tmp.*")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


class RunFolder:
    """The --out folder `path` of `command`, which writes `names` and the `folders` patterns there."""

    def __init__(self, path: Path | str, *, command: str = "synth", names: Iterable[str] = (),
                 folders: Mapping[str, str] | None = None, error: type[UserError] = UserError,
                 config: str = "config.json"):
        self.path = Path(path)
        self.command = command
        self.error = error
        self.config = config  # the file that says which run owns the folder
        self._names = _owned("|".join(re.escape(n) for n in names)) if names else None
        self._folders = {name: _owned(p) for name, p in (folders or {}).items()}

    # ----------------------------------------------------------------- rules 1 and 5

    def check(self) -> Path:
        """A one-line error unless `path` is a folder or nothing yet and its parent can be made."""
        path = self.path
        if path.exists() and not path.is_dir():
            raise self.error(f"--out {path} is a file, not a folder; choose another --out")
        blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            raise self.error(f"cannot write to {path}: {blocker} is a file, not a folder; choose a writable --out")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise self.error(f"cannot write to {path}: {e.strerror}; choose a writable --out") from None
        return path

    # ----------------------------------------------------------------- rule 2

    def is_empty(self) -> bool:
        return not self.path.is_dir() or not any(not p.name.startswith(".") for p in self.path.iterdir())

    def differing_keys(self, config: dict, may_change: Iterable[str] = ()) -> list[str] | None:
        """The keys, apart from `may_change`, in which the folder's config file differs from `config`
        (a JSON-able dict, compared as JSON stores it); None when the folder holds no config file."""
        path = self.path / self.config
        if not path.exists():
            return None
        old = json.loads(path.read_text(encoding="utf-8"))
        new = json.loads(json.dumps(config))
        skip = set(may_change)
        return sorted(k for k in set(old) | set(new) if k not in skip and old.get(k) != new.get(k))

    def other_run(self, keys: list[str], what: str = "run") -> UserError:
        return self.error(f"{self.path} holds a different {what} (config differs in: {', '.join(keys)}); "
                          "pass --overwrite to replace it or choose another --out")

    def not_a_run(self, what: str) -> UserError:
        return self.error(f"{self.path} is not empty and is not a {what}; choose another --out or pass --overwrite")

    def refuse_existing(self, overwrite: bool, *, foreign_ok: bool = True) -> None:
        """For a folder without config.json: a non-empty one only with --overwrite, and with
        `foreign_ok` False (a staged report) not even then if it holds files the command did not write."""
        if self.is_empty():
            return
        if not overwrite:
            raise self.error(f"{self.path} already exists and is not empty; pass --overwrite to replace what "
                             f"{self.command} wrote there or choose another --out")
        foreign = self.foreign()
        if foreign and not foreign_ok:
            raise self.error(f"{self.path} holds files {self.command} did not write ({', '.join(foreign[:3])}); "
                             "move them or choose another --out")

    # ----------------------------------------------------------------- rule 3

    def owns(self, name: str) -> bool:
        """True for a top-level entry `name` the command owns whole."""
        return self._names is not None and self._names.fullmatch(name) is not None

    def foreign(self) -> list[str]:
        """Paths (relative, sorted) of the visible top-level entries and the entries of owned
        folders that the command did not write."""
        if not self.path.is_dir():
            return []
        out = []
        for p in sorted(self.path.iterdir()):
            pattern = self._folders.get(p.name)
            if pattern is not None and p.is_dir():
                out += [f"{p.name}/{q.name}" for q in sorted(p.iterdir()) if not pattern.fullmatch(q.name)]
            elif not self.owns(p.name) and not p.name.startswith("."):
                out.append(p.name)
        return out

    def clear(self, log: Callable[[str], None] = print) -> list[str]:
        """Remove what the command owns (--overwrite); returns the foreign paths that stayed."""
        kept = self.foreign()
        if not self.path.is_dir():
            return kept
        for p in self.path.iterdir():
            pattern = self._folders.get(p.name)
            if pattern is not None and p.is_dir():
                for q in p.iterdir():
                    if pattern.fullmatch(q.name):
                        _remove(q)
                if not any(p.iterdir()):
                    p.rmdir()
            elif self.owns(p.name):
                _remove(p)
        if kept:
            log(f"--overwrite kept {len(kept)} file(s) in {self.path} that {self.command} did not write "
                f"({', '.join(kept[:3])}{', ...' if len(kept) > 3 else ''})")
        return kept

    # ----------------------------------------------------------------- rule 4

    @contextmanager
    def staged(self, last: str = "report.json") -> Iterator[Path]:
        """A temporary folder beside `path` to build the output in. On success its entries replace
        the command's in `path` (owned ones it did not make this time go too): `last` is removed
        first and moved in last, so a folder holding `last` always holds a complete output. On
        failure the temporary folder goes and `path` is as it was."""
        tmp = Path(tempfile.mkdtemp(dir=self.path.parent, prefix=f".{self.path.name}.tmp-"))
        try:
            yield tmp
            if not self.path.exists():
                os.replace(tmp, self.path)
                return
            made = sorted(p.name for p in tmp.iterdir())
            (self.path / last).unlink(missing_ok=True)
            for p in self.path.iterdir():
                if self.owns(p.name) and p.name not in made:  # a plot this run did not make must not linger
                    _remove(p)
            for name in [n for n in made if n != last] + ([last] if last in made else []):
                if (self.path / name).is_dir():
                    shutil.rmtree(self.path / name)
                os.replace(tmp / name, self.path / name)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
