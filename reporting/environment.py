"""The report's Environment section: with what and where each run's stages ran (state.json ``environments``), the
command lines that ran them and the external weight files they loaded (SHA-256), and a warning when the compared
runs come from different library or CUDA versions."""

from __future__ import annotations

from common.environment import VERSION_KEYS
from records.layout import STATE_FILE
from reporting.runs import Run

WHERE_KEYS = ("hostname", "gpu_names", "gpu_count", "world_size", "nodes", "omp_threads", "slurm_job_id")


def _versions(environment: dict) -> tuple:
    return tuple((key, environment.get(key)) for key in VERSION_KEYS)


def _cell(value) -> str:
    if value is None:
        return "-"
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


def version_sets(runs: list[Run]) -> dict[tuple, list[str]]:
    """Each distinct set of versions the runs' stages ran with -> the run directories that used it."""
    found: dict[tuple, list[str]] = {}
    for run in runs:
        for environment in run.environments:
            names = found.setdefault(_versions(environment), [])
            if str(run.path) not in names:
                names.append(str(run.path))
    return found


def version_warning(runs: list[Run]) -> str | None:
    """One line naming what differs when the runs (or the stages of one run) ran with different versions."""
    sets = list(version_sets(runs))
    if len(sets) < 2:
        return None
    differing = [key for i, key in enumerate(VERSION_KEYS) if len({s[i][1] for s in sets}) > 1]
    values = "; ".join(f"{key} " + " / ".join(sorted({_cell(s[VERSION_KEYS.index(key)][1]) for s in sets}))
                       for key in differing)
    return (f"the compared runs come from different versions ({values}): numbers may differ for that reason alone; "
            "see the Environment section of summary.md")


def environment_markdown(runs: list[Run]) -> list[str]:
    """The Environment section: one row per set of versions (and the runs that used it), one row per run of where
    it ran; runs written before environments were recorded say so."""
    lines = ["## Environment", ""]
    warning = version_warning(runs)
    if warning:
        lines += [f"**Warning**: {warning}.", ""]
    sets = version_sets(runs)
    if sets:
        header = ["runs", *VERSION_KEYS]
        lines += [f"Versions the stages ran with ({STATE_FILE} `environments`):", "",
                  "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for versions, names in sets.items():
            lines.append("| " + " | ".join([", ".join(f"`{n}`" for n in names), *(_cell(v) for _, v in versions)])
                         + " |")
        header = ["run", "git commit", *WHERE_KEYS]
        lines += ["", "Where they ran (the latest stage's record):", "",
                  "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for run in (r for r in runs if r.environments):
            last = run.environments[-1]
            commit = _cell(last.get("git_commit"))[:12] + (" (dirty)" if last.get("git_dirty") else "")
            lines.append("| " + " | ".join([f"`{run.path}`", commit, *(_cell(last.get(k)) for k in WHERE_KEYS)])
                         + " |")
    lines += provenance_markdown(runs)
    missing = [f"`{r.path}`" for r in runs if not r.environments]
    if missing:
        lines += ["", "No environment recorded (runs written by an earlier version of this tool): "
                  + ", ".join(missing)]
    return [*lines, ""]


def provenance_markdown(runs: list[Run]) -> list[str]:
    """One row per run and command line its stages recorded, and one row per external weight file they loaded
    (what, SHA-256, size); records written before these were recorded are left out."""
    commands, weights = [], []
    for run in runs:
        for command in dict.fromkeys(e["command_line"] for e in run.environments if e.get("command_line")):
            commands.append(f"| `{run.path}` | `{command}` |")
        files: dict[str, dict] = {}
        for environment in run.environments:
            for weight in environment.get("weight_files") or []:
                files.setdefault(str(weight.get("sha256")), weight)
        weights += [f"| `{run.path}` | {w.get('what', '-')} | `{w.get('path', '-')}` | `{w.get('sha256', '-')}` | "
                    f"{w.get('bytes', '-')} |" for w in files.values()]
    lines = []
    if commands:
        lines += ["", f"Command lines that ran the stages ({STATE_FILE} `environments`):", "", "| run | command line |",
                  "|---|---|", *commands]
    if weights:
        lines += ["", "External weight files the stages loaded:", "", "| run | what | path | SHA-256 | bytes |",
                  "|---|---|---|---|---|", *weights]
    return lines
