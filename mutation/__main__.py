"""Mutation score of the simulations: ``python -m mutation run <target>``.

Targets are the ``*.toml`` files beside this one (cosmic-ray configurations). The run
clones the repository's committed ``HEAD`` into a temporary directory and mutates
files there only, so the working tree is never touched; it then writes
``mutation/results/<target>.json`` in the working tree: absolute counts, the score
``killed / (killed + survived)`` and every survivor with its diff. Equivalent mutants
are listed, with a reason, in the target's ``[equivalent]`` table, keyed
``"<file>:<line>:<operator>:<occurrence>"``; the run skips them.

``--budget SECONDS`` stops the run after that long; the mutants not reached count as
not run (the results file says how many). ``python -m mutation rescore <target>``
re-reads the ``[equivalent]`` table and recomputes the score of the last results file,
without running anything.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import tomllib

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float | None = None) -> int:
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, start_new_session=True)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)  # the exec and the pytest it runs
        proc.wait()
        return -1


def _key(mutation: dict[str, Any]) -> str:
    """A dumped mutation's ``[equivalent]`` key."""
    return _key_of(
        mutation["module_path"],
        mutation["start_pos"][0],
        mutation["operator_name"],
        mutation["occurrence"],
    )


def _key_of(path: str, line: int, operator: str, occurrence: int) -> str:
    """``"<file>:<line>:<operator>:<occurrence>"``, as the ``[equivalent]`` table keys mutants."""
    return f"{path}:{line}:{operator}:{occurrence}"


def summarise(
    target: str, dump: str, equivalent: dict[str, str], budget_hit: bool
) -> dict[str, Any]:
    """Counts, score and survivors from a ``cosmic-ray dump``."""
    counts: Counter[str] = Counter()
    survivors, equivalents = [], []
    for line in dump.splitlines():
        job, result = json.loads(line)
        [mutation] = job["mutations"]
        counts["generated"] += 1
        if result is None:
            counts["not_run"] += 1
            continue
        if result["worker_outcome"] == "skipped":
            key = _key(mutation)
            if (result.get("output") or "").startswith(EQUIVALENT_NOT_RUN) and key in equivalent:
                counts["equivalent"] += 1
                equivalents.append(
                    {"mutant": key, "function": mutation["definition_name"], "diff": "",
                     "reason": equivalent[key], "run": False}
                )  # fmt: skip
            else:
                counts["filtered"] += 1
            continue
        if result["worker_outcome"] == "exception":  # cosmic-ray could not make the mutant
            counts["not_made"] += 1
            continue
        counts["run"] += 1
        if result["worker_outcome"] == "abnormal":  # cosmic-ray's timeout
            counts["timed_out"] += 1
            counts["killed"] += 1
        elif result["test_outcome"] == "killed":
            counts["killed"] += 1
        else:
            key = _key(mutation)
            entry = {"mutant": key, "function": mutation["definition_name"], "diff": result["diff"]}
            if key in equivalent:
                counts["equivalent"] += 1
                equivalents.append({**entry, "reason": equivalent[key]})
            else:
                counts["survived"] += 1
                survivors.append(entry)
    judged = counts["killed"] + counts["survived"]
    return {
        "target": target,
        "complete": not budget_hit and counts["not_run"] == 0,
        "counts": {
            k: counts[k]
            for k in (
                "generated",
                "filtered",
                "not_made",
                "not_run",
                "run",
                "killed",
                "timed_out",
                "equivalent",
                "survived",
            )
        },
        "score": round(counts["killed"] / judged, 4) if judged else None,
        "survivors": survivors,
        "equivalent": equivalents,
    }


def rescore(target: str) -> dict[str, Any]:
    """Re-judge the survivors of ``results/<target>.json`` by the current ``[equivalent]``."""
    out = HERE / "results" / f"{target}.json"
    summary: dict[str, Any] = json.loads(out.read_text())
    table = _config(target).get("equivalent", {})
    counts = summary["counts"]
    survivors, equivalents = [], []
    for entry in summary["survivors"] + summary["equivalent"]:
        entry = {k: v for k, v in entry.items() if k != "reason"}
        if not entry.get("diff") and entry.get("run", True):  # cosmic-ray could not make it
            counts["run"] -= 1
            counts["not_made"] = counts.get("not_made", 0) + 1
            continue
        if entry["mutant"] in table:
            equivalents.append({**entry, "reason": table[entry["mutant"]]})
        elif entry.get("run", True):
            survivors.append(entry)
        else:  # judged equivalent and not run, no longer in the table: unknown
            counts["not_run"] = counts.get("not_run", 0) + 1
    counts["equivalent"], counts["survived"] = len(equivalents), len(survivors)
    judged = counts["killed"] + counts["survived"]
    summary["score"] = round(counts["killed"] / judged, 4) if judged else None
    summary["survivors"], summary["equivalent"] = survivors, equivalents
    return summary


def _config(target: str) -> dict[str, Any]:
    config_path = HERE / f"{target}.toml"
    if not config_path.exists():
        names = sorted(p.stem for p in HERE.glob("*.toml"))
        sys.exit(f"no target {target!r}: pick one of {names} (mutation/<target>.toml)")
    return tomllib.loads(config_path.read_text())


def run(target: str, budget: float | None) -> dict[str, Any]:
    """Mutate ``target`` in a fresh clone of ``HEAD`` and return its summary."""
    config = _config(target)
    env = _venv_env()
    env.pop("CI", None)
    with tempfile.TemporaryDirectory(prefix=f"mutation-{target}-") as tmp:
        clone, session = Path(tmp) / "repo", str(Path(tmp) / "session.sqlite")
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        where = subprocess.run(
            [sys.executable, "-c", "import patterns; print(patterns.__file__)"],
            cwd=clone,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        if not Path(where).resolve().is_relative_to(clone.resolve()):
            sys.exit(f"the clone imports patterns from {where}; run from the repository's venv")
        cfg = str(clone / "mutation" / f"{target}.toml")
        for cmd in (["cosmic-ray", "init", cfg, session], ["cr-filter-operators", session, cfg]):
            subprocess.run(cmd, cwd=clone, env=env, check=True)
        _skip_equivalent(session, config.get("equivalent", {}))
        if _run(["cosmic-ray", "baseline", cfg], clone, env) != 0:
            sys.exit("the simulations fail on the unmutated code: fix that first")
        budget_hit = _run(["cosmic-ray", "exec", cfg, session], clone, env, budget) == -1
        dump = subprocess.run(
            ["cosmic-ray", "dump", session],
            cwd=clone,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=clone, capture_output=True, text=True, check=True
        ).stdout.strip()
    return _summary(target, config, dump, budget_hit, commit)


EQUIVALENT_NOT_RUN = "equivalent, not run: "
"""How a skipped work item judged equivalent in the target's table is marked in the session."""


def _skip_equivalent(session: str, equivalent: dict[str, str]) -> None:
    """Mark the mutants the ``[equivalent]`` table lists as skipped, so ``exec`` never runs them.

    Each judged-equivalent survivor otherwise costs a full simulation run (a minute or
    more) to confirm what its reason already says; a wrong judgement is then not caught
    by a kill, so every reason must stand on its own (see docs/mutation.md).
    """
    conn = sqlite3.connect(session)
    try:
        rows = conn.execute(
            "SELECT job_id, module_path, start_pos_row, operator_name, occurrence "
            "FROM mutation_specs WHERE job_id NOT IN (SELECT job_id FROM work_results)"
        ).fetchall()
        marks = [
            ("SKIPPED", EQUIVALENT_NOT_RUN + equivalent[key], job)
            for job, path, row, operator, occurrence in rows
            for key in [_key_of(path, row, operator, occurrence)]
            if key in equivalent
        ]
        with conn:
            conn.executemany(
                "INSERT INTO work_results (worker_outcome, output, job_id) VALUES (?, ?, ?)", marks
            )
    finally:
        conn.close()


def _venv_env() -> dict[str, str]:
    """This environment with the running interpreter's directory (the virtualenv) on PATH."""
    return dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")


def _summary(
    target: str, config: dict[str, Any], dump: str, budget_hit: bool, commit: str
) -> dict[str, Any]:
    summary = summarise(target, dump, config.get("equivalent", {}), budget_hit)
    summary["commit"] = commit
    summary["test_command"] = config["cosmic-ray"]["test-command"]
    summary["timeout_seconds"] = config["cosmic-ray"]["timeout"]
    return summary


def from_session(target: str, session: str, commit: str) -> dict[str, Any]:
    """The summary of a session file kept from a run of ``commit`` (if its run stopped early)."""
    dump = subprocess.run(
        ["cosmic-ray", "dump", session], env=_venv_env(), capture_output=True, text=True, check=True
    ).stdout
    return _summary(target, _config(target), dump, False, commit)


def main() -> None:
    """Command line: ``python -m mutation run|rescore|session <target> ...``."""
    parser = argparse.ArgumentParser(prog="python -m mutation")
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("run", help="mutate a target in a clone and record its score")
    cmd.add_argument("target", help="a configuration in mutation/, e.g. breaker, fanin, saga")
    cmd.add_argument("--budget", type=float, help="stop after this many seconds")
    again = sub.add_parser("rescore", help="re-judge the last results by [equivalent]")
    again.add_argument("target")
    kept = sub.add_parser("session", help="summarise a kept cosmic-ray session file")
    kept.add_argument("target")
    kept.add_argument("session", help="the session.sqlite of a run (copied while it ran)")
    kept.add_argument("commit", help="the commit that run mutated")
    args = parser.parse_args()
    if args.command == "rescore":
        summary = rescore(args.target)
    elif args.command == "session":
        summary = from_session(args.target, args.session, args.commit)
    else:
        summary = run(args.target, args.budget)
    out = HERE / "results" / f"{args.target}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: summary[k] for k in ("target", "complete", "counts", "score")}, indent=2))
    for s in summary["survivors"]:
        print(f"survived: {s['mutant']} ({s['function']})")


if __name__ == "__main__":
    main()
