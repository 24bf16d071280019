"""deploy/: the systemd unit parses and is hardened; the container file's commands run.

No container engine is needed: the Containerfile is read instruction by instruction,
its install step runs as written (paths moved into a temporary folder) in a fresh
venv from a build context copied as ``.dockerignore`` says, and its ENTRYPOINT, CMD,
ENV, HEALTHCHECK and STOPSIGNAL are exercised against a temporary data directory.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "deploy" / "docket-server.service"
CONTAINERFILE = ROOT / "deploy" / "Containerfile"
TIMEOUT = 300

# --- the systemd unit -----------------------------------------------------------------


def parse_unit(text: str) -> dict[str, list[tuple[str, str]]]:
    """A unit file as systemd reads it: sections of ``Key=value`` lines (keys may repeat),
    ``#``/``;`` comments, backslash continuations.  Anything else is an error."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    lines = text.replace("\\\n", " ").splitlines()
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        header = re.fullmatch(r"\[([A-Za-z]+)\]", stripped)
        if header:
            assert header.group(1) not in sections, f"line {number}: section repeated"
            current = sections[header.group(1)] = []
            continue
        match = re.fullmatch(r"([A-Za-z][A-Za-z0-9]*)=(.*)", stripped)
        assert match and current is not None, f"line {number}: not Key=value: {line!r}"
        current.append((match.group(1), match.group(2).strip()))
    return sections


def _values(section: list[tuple[str, str]], key: str) -> list[str]:
    return [v for k, v in section if k == key]


def test_unit_file_parses_and_is_hardened() -> None:
    unit = parse_unit(UNIT.read_text())
    assert set(unit) == {"Unit", "Service", "Install"}
    service = unit["Service"]
    one = {k: v for k, v in service if len(_values(service, k)) == 1}
    # Runs as its own unprivileged user with no way to gain privileges.
    assert one["User"] == "docket" and one["Group"] == "docket"
    assert one["NoNewPrivileges"] == "yes"
    assert one["CapabilityBoundingSet"] == "" and one["AmbientCapabilities"] == ""
    # The file system is read-only but for its own state directory, which is private.
    assert one["ProtectSystem"] == "strict"
    assert one["ProtectHome"] == "yes" and one["PrivateTmp"] == "yes"
    assert one["StateDirectory"] == "docket" and one["StateDirectoryMode"] == "0700"
    assert one["UMask"] == "0077"
    assert one["Environment"] == "DOCKET_DATA=/var/lib/docket/data"
    assert one["Environment"].split("=", 1)[1].startswith(f"/var/lib/{one['StateDirectory']}/")
    assert one["RestrictAddressFamilies"] == "AF_INET AF_INET6 AF_UNIX"
    assert _values(service, "SystemCallFilter")[0] == "@system-service"
    # The server's own clean shutdown is SIGTERM; it must not be killed before draining.
    assert one["KillSignal"] == "SIGTERM"
    argv = shlex.split(one["ExecStart"])
    assert argv[0].endswith("/docket-server") and argv[1:] == ["serve"]
    assert unit["Install"] == [("WantedBy", "multi-user.target")]


def _unit_for_this_machine(tmp_path: Path) -> Path:
    # systemd-analyze checks that ExecStart's program exists: point it at the installed one.
    installed = Path(sys.executable).parent / "docket-server"
    assert installed.is_file()
    text = UNIT.read_text().replace("/opt/docket/bin/docket-server", str(installed))
    path = tmp_path / UNIT.name
    path.write_text(text)
    return path


def _systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        pytest.skip("systemd-analyze is not installed (the unit is still parsed above)")
    return found


def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    analyze = _systemd_analyze()
    path = _unit_for_this_machine(tmp_path)
    done = subprocess.run(  # noqa: PLW1510 (the code is asserted)
        [analyze, "verify", str(path)], capture_output=True, text=True, timeout=60
    )
    # verify exits 0 even for unknown keys or bad values; those are lines on stderr.
    complaints = [line for line in done.stderr.splitlines() if path.name in line]
    assert done.returncode == 0 and not complaints, done.stderr


def test_systemd_analyze_rates_the_unit_well_hardened(tmp_path: Path) -> None:
    analyze = _systemd_analyze()
    path = _unit_for_this_machine(tmp_path)
    done = subprocess.run(  # noqa: PLW1510 (the code is asserted)
        [analyze, "security", "--offline=yes", "--threshold=20", "--no-pager", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    exposure = re.search(r"Overall exposure level for \S+: ([0-9.]+)", done.stdout)
    assert exposure is not None, done.stdout[-500:] + done.stderr
    assert done.returncode == 0 and float(exposure.group(1)) <= 2.0, done.stdout[-2000:]


# --- the container file ---------------------------------------------------------------


@dataclass
class Image:
    """What a Containerfile says, instruction by instruction."""

    base: str = ""
    runs: list[str] = field(default_factory=list)
    copies: list[tuple[str, str]] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    user: str = "root"
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    healthcheck: list[str] = field(default_factory=list)
    stopsignal: str = "SIGTERM"
    expose: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)


def parse_containerfile(text: str) -> Image:
    """The instructions this project's Containerfile uses; any other one is an error."""
    image = Image()
    for raw in text.replace("\\\n", " ").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        rest = rest.strip()
        if word == "FROM":
            image.base = rest
        elif word == "RUN":
            image.runs.append(rest)
        elif word == "COPY":
            source, dest = rest.split()
            image.copies.append((source, dest))
        elif word == "ENV":
            image.env.update(_env_pairs(rest, image.env))
        elif word == "USER":
            image.user = rest
        elif word == "ENTRYPOINT":
            image.entrypoint = json.loads(rest)
        elif word == "CMD":
            image.cmd = json.loads(rest)
        elif word == "HEALTHCHECK":
            image.healthcheck = json.loads(rest.removeprefix("CMD").strip())
        elif word == "STOPSIGNAL":
            image.stopsignal = rest
        elif word == "EXPOSE":
            image.expose.extend(rest.split())
        elif word == "VOLUME":
            image.volumes.extend(rest.split())
        else:
            raise AssertionError(f"unexpected instruction {word}")
    return image


def _env_pairs(rest: str, env: dict[str, str]) -> dict[str, str]:
    pairs = {}
    for item in shlex.split(rest):
        key, _, value = item.partition("=")
        pairs[key] = re.sub(
            r"\$(\w+)", lambda m: env.get(m.group(1), os.environ.get(m.group(1), "")), value
        )
    return pairs


def _ignored(patterns: list[str]) -> Callable[[str, list[str]], set[str]]:
    def ignore(directory: str, names: list[str]) -> set[str]:
        rel = Path(directory).relative_to(ROOT)
        out = set()
        for name in names:
            path = (rel / name).as_posix()
            for pattern in patterns:
                bare = pattern.removeprefix("**/")
                if fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(name, bare):
                    out.add(name)
        return out

    return ignore


def test_container_file_commands_run(tmp_path: Path) -> None:
    image = parse_containerfile(CONTAINERFILE.read_text())
    assert image.base.startswith("docker.io/library/python:3.1")
    assert image.user == "docket"  # never root at run time
    [(src, dest)] = image.copies
    assert src == "."
    # The user is created by one RUN step; it changes the host's user table, so it is
    # checked here rather than run.
    useradd = [r for r in image.runs if r.startswith("useradd ")]
    assert len(useradd) == 1 and "--system" in useradd[0]
    assert shlex.split(useradd[0])[-1] == image.user

    # COPY . /src: the build context as .dockerignore leaves it.
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    context = tmp_path / "src"
    shutil.copytree(ROOT, context, ignore=_ignored(patterns))
    assert not (context / ".venv").exists() and not (context / ".git").exists()

    # The install step, exactly as written, with its two paths moved under tmp_path.
    prefix = tmp_path / "opt-docket"
    [install] = [r for r in image.runs if "pip install" in r]
    command = install.replace("/opt/docket", str(prefix)).replace(dest, str(context))
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("VIRTUAL_ENV", None)
    env["PATH"] = os.pathsep.join(
        p for p in env["PATH"].split(os.pathsep) if not p.startswith(str(Path(sys.prefix)))
    )
    done = subprocess.run(  # noqa: PLW1510 (the code is asserted)
        ["/bin/sh", "-ec", command], env=env, capture_output=True, text=True, timeout=TIMEOUT
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert not context.exists()  # the step removes its sources

    # The image's environment, with its paths moved too.
    run_env = {**env}
    for key, value in image.env.items():
        run_env[key] = value.replace("/opt/docket", str(prefix))
    data = tmp_path / "var-lib-docket" / "data"
    run_env["DOCKET_DATA"] = str(data)
    run_env["DOCKET_PORT"] = "0"  # any free port: other tests run beside this one
    entry = shutil.which(image.entrypoint[0], path=run_env["PATH"])
    assert entry is not None and entry.startswith(str(prefix))

    version = subprocess.run(  # noqa: PLW1510 (the code is asserted)
        [entry, "--version"], env=run_env, capture_output=True, text=True, timeout=60
    )
    assert version.stdout.startswith("docket-server "), version.stderr
    init = subprocess.run(  # noqa: PLW1510 (the code is asserted)
        [entry, "init", "--data", str(data), "--origin", "deploy.test/1", "--json"],
        env=run_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert init.returncode == 0, init.stderr
    assert json.loads(init.stdout)["origin"] == "deploy.test/1"

    # ENTRYPOINT + CMD: serve, answer the HEALTHCHECK, stop on STOPSIGNAL.
    proc = subprocess.Popen(
        [entry, *image.cmd],
        env=run_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Bounded: a server that neither prints its line nor exits is killed.
    watchdog = threading.Timer(90, proc.kill)
    watchdog.start()
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.fullmatch(r"listening on http://0\.0\.0\.0:(\d+)\n", line)
        assert match, line
        port = match.group(1)
        health = [part.replace(":8470/", f":{port}/") for part in image.healthcheck]
        health[0] = str(prefix / "bin" / health[0])  # python inside the image is its venv's
        checked = subprocess.run(  # noqa: PLW1510
            health, env=run_env, capture_output=True, timeout=30
        )
        assert checked.returncode == 0, checked.stderr
        proc.send_signal(getattr(signal, image.stopsignal))
        assert proc.wait(timeout=30) == 0
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert proc.stderr is not None
    logs = proc.stderr.read().splitlines()
    assert logs and all(json.loads(line)["ts"].endswith("Z") for line in logs)
