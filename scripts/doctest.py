#!/usr/bin/env python3
"""Runs the commands and code blocks of the user documentation (`make test-docs`).

Every fenced block in README.md, bindings/python/README.md and docs/*.md whose language is
sh/bash/shell, python, c, cpp or rust is checked; other blocks (```text, plain ```) are prose.

* ```sh blocks run with `bash -e -o pipefail` from the repository root (or, with
  `cwd=home`, from the scratch home directory, outside the repository). Each block runs in its
  own process group, killed when the block ends, so servers a block starts in the
  background never outlive it.
* ```python blocks run from a scratch directory outside the repository with the Python of
  the virtualenv the docs create (`~/raft-venv`).
* ```c, ```cpp and ```rust blocks must be a file of the repository verbatim (`same-as=PATH`, the file
  is compiled and run by the tests) or an excerpt of one (`excerpt-of=PATH`).

HOME is a fresh scratch directory for the whole run (`$HOME/.local`, `~/raft-venv` ... land
there); Cargo, rustup, pyenv and pip caches stay where they are. Runs hold a lock so that two
runs on one machine do not fight over the fixed ports some documents use.

A directive comment on the line before a fence changes this:
    <!-- doc-test: skip REASON -->          not run (the reason is required)
    <!-- doc-test: cwd=home -->             run a sh block in $HOME, outside the repository
    <!-- doc-test: same-as=PATH -->         the block is that file, verbatim
    <!-- doc-test: excerpt-of=PATH -->      the block appears verbatim in that file
    <!-- doc-test: write=PATH -->           write the block to $HOME/PATH (then run it if sh/python)
    <!-- doc-test: with-previous -->        run after the previous block of the same language
                                            (itself with its own previous, if so marked)
Usage: scripts/doctest.py [--list] [FILE.md ...]   (RAFT_DOCTEST_VERBOSE=1 prints each output)
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUN_LANGS = {"sh": "sh", "bash": "sh", "shell": "sh", "python": "python", "py": "python",
             "c": "c", "cpp": "cpp", "c++": "cpp", "rust": "rust"}
DIRECTIVE = re.compile(r"^<!--\s*doc-test:\s*(.*?)\s*-->\s*$")
# Per block; generous because a first run compiles (a release build of the Python
# extension takes many minutes on a loaded two-core machine).
TIMEOUT = int(os.environ.get("RAFT_DOCTEST_TIMEOUT", "2400"))


@dataclass
class Block:
    path: Path
    line: int
    lang: str
    text: str
    opts: dict[str, str] = field(default_factory=dict)

    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def parse_directive(s: str) -> dict[str, str]:
    if s.startswith("skip"):
        reason = s[4:].strip(" :")
        return {"skip": reason}
    opts = {}
    for word in s.split():
        k, _, v = word.partition("=")
        opts[k] = v
    return opts


def blocks_of(path: Path) -> list[Block]:
    out: list[Block] = []
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        m = re.match(r"^```\s*([A-Za-z0-9_+-]*)", lines[i])
        if not m or lines[i].startswith("````"):
            i += 1
            continue
        lang = m.group(1).lower()
        start = i
        i += 1
        body = []
        while i < len(lines) and not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        i += 1
        opts: dict[str, str] = {}
        if start > 0:
            d = DIRECTIVE.match(lines[start - 1].strip())
            if d:
                opts = parse_directive(d.group(1))
        if lang in RUN_LANGS or "write" in opts:
            out.append(Block(path, start + 1, RUN_LANGS.get(lang, lang), "\n".join(body) + "\n",
                             opts))
    return out


def doc_files(args: list[str]) -> list[Path]:
    if args:
        return [Path(a).resolve() for a in args]
    files = [ROOT / "README.md", ROOT / "bindings/python/README.md"]
    files += sorted((ROOT / "docs").glob("*.md"))
    return files


class Runner:
    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self.work = scratch / "work"
        self.home = scratch / "home"
        self.work.mkdir()
        self.home.mkdir()
        real_home = Path(os.environ.get("HOME", "/root"))
        env = dict(os.environ)
        env["HOME"] = str(self.home)
        # Tool caches and toolchains stay in the real home.
        for var, default in [("CARGO_HOME", ".cargo"), ("RUSTUP_HOME", ".rustup"),
                             ("PYENV_ROOT", ".pyenv"), ("PIP_CACHE_DIR", ".cache/pip")]:
            if var not in env and (real_home / default).exists():
                env[var] = str(real_home / default)
        env.pop("VIRTUAL_ENV", None)
        env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
        self.env = env
        self.previous: dict[tuple[Path, str], list[str]] = {}
        self.counts = {"run": 0, "checked": 0, "skipped": 0}

    def fail(self, b: Block, what: str, out: str = "") -> None:
        sys.stderr.write(f"\nDOC TEST FAILED at {b.where()} ({b.lang}): {what}\n")
        sys.stderr.write("--- block ---\n" + b.text)
        if out:
            sys.stderr.write("--- output ---\n" + out[-6000:] + "\n")
        raise SystemExit(1)

    def run_proc(self, b: Block, argv: list[str], cwd: Path) -> None:
        t0 = time.monotonic()
        # Output goes to a file, not a pipe: servers a block leaves in the background keep
        # the file open, and must not keep us waiting for an end of file.
        with tempfile.TemporaryFile(mode="w+") as log:
            p = subprocess.Popen(argv, cwd=cwd, env=self.env, stdout=log,
                                 stderr=subprocess.STDOUT, text=True, start_new_session=True)
            try:
                p.wait(timeout=TIMEOUT)
                timed_out = False
            except subprocess.TimeoutExpired:
                timed_out = True
            try:  # whatever the block left running in the background
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()
            log.seek(0)
            out = log.read()
        if timed_out:
            self.fail(b, f"timed out after {TIMEOUT} s", out)
        if p.returncode != 0:
            self.fail(b, f"exit status {p.returncode}", out)
        print(f"  ok   {b.where():40} {b.lang:6} {time.monotonic() - t0:6.1f} s", flush=True)
        if os.environ.get("RAFT_DOCTEST_VERBOSE"):
            print("    | " + out.rstrip().replace("\n", "\n    | "), flush=True)
        self.counts["run"] += 1

    def file_check(self, b: Block) -> bool:
        for key in ("same-as", "excerpt-of"):
            if key in b.opts:
                target = ROOT / b.opts[key]
                if not target.is_file():
                    self.fail(b, f"{key}: no file {b.opts[key]}")
                content = target.read_text()
                ok = content == b.text if key == "same-as" else b.text in content
                if not ok:
                    self.fail(b, f"the block is not {'' if key == 'same-as' else 'part of '}"
                                 f"{b.opts[key]} verbatim: update one of them")
                print(f"  same {b.where():40} {b.lang:6} = {b.opts[key]}", flush=True)
                self.counts["checked"] += 1
                return True
        return False

    def chain(self, b: Block) -> str:
        """The block's code, after the code of the previous block of the same language in
        the file if marked `with-previous` (recursively)."""
        done = self.previous.setdefault((b.path, b.lang), [])
        code = b.text
        if "with-previous" in b.opts:
            if not done:
                self.fail(b, "with-previous, but no previous block of this language")
            code = done[-1] + code
        done.append(code)
        return code

    def run(self, b: Block) -> None:
        if "skip" in b.opts:
            if not b.opts["skip"]:
                self.fail(b, "`skip` needs a reason")
            print(f"  skip {b.where():40} {b.lang:6} ({b.opts['skip']})", flush=True)
            self.counts["skipped"] += 1
            return
        if "write" in b.opts:
            target = self.home / b.opts["write"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(b.text)
            print(f"  file {b.where():40} {b.lang:6} -> {b.opts['write']}", flush=True)
            self.counts["checked"] += 1
            if b.lang not in ("sh", "python"):
                return
        if self.file_check(b):
            return
        if b.lang == "sh":
            cwd = self.home if b.opts.get("cwd") == "home" else ROOT
            self.run_proc(b, ["bash", "-e", "-o", "pipefail", "-c", self.chain(b)], cwd)
        elif b.lang == "python":
            script = self.work / f"block_{b.path.stem}_{b.line}.py"
            script.write_text(self.chain(b))
            venv_python = self.home / "raft-venv/bin/python"
            python = os.environ.get("RAFT_DOCTEST_PYTHON") or (
                str(venv_python) if venv_python.exists() else sys.executable)
            self.run_proc(b, [python, str(script)], self.work)
        else:
            self.fail(b, f"a ```{b.lang} block must be same-as=FILE or excerpt-of=FILE "
                         "(a file the tests build), or skip")


def main() -> int:
    args = sys.argv[1:]
    listing = "--list" in args
    args = [a for a in args if a != "--list"]
    blocks = [b for f in doc_files(args) for b in blocks_of(f)]
    if listing:
        for b in blocks:
            print(b.where(), b.lang, b.opts)
        return 0
    lock = open(os.path.join(tempfile.gettempdir(), "raft-manager-doctest.lock"), "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    scratch = Path(tempfile.mkdtemp(prefix="raft-doctest-"))
    t0 = time.monotonic()
    try:
        r = Runner(scratch)
        print(f"doc test: {len(blocks)} blocks, scratch {scratch}", flush=True)
        for b in blocks:
            r.run(b)
    except SystemExit:
        print(f"scratch directory kept: {scratch}", file=sys.stderr)
        raise
    shutil.rmtree(scratch, ignore_errors=True)
    c = r.counts
    print(f"doc test passed: {c['run']} blocks run, {c['checked']} checked against files, "
          f"{c['skipped']} skipped, {time.monotonic() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
