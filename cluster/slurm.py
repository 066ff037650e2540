"""Slurm: writing sbatch scripts, submitting them, and reading back job states.

Every user-supplied value reaches the script either as a validated #SBATCH option value (a
plain word, never a newline) or as a shell word quoted with shlex.quote; nothing user-supplied
is ever interpreted by a shell.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cluster import launchers
from cluster.sites import Site
from harness.errors import UserError

REGISTRY = Path("jobs") / "submitted.ndjson"  # beside the job scripts, apart from run files
TIMEOUT_S = 20
# What each #SBATCH option accepts: sbatch parses these lines itself, so values stay plain.
_OPTION_VALUE = {
    "job-name": r"[A-Za-z0-9_.+-]{1,128}",
    "partition": r"[A-Za-z0-9_.,-]{1,128}",
    "account": r"[A-Za-z0-9_.-]{1,128}",
    "qos": r"[A-Za-z0-9_.-]{1,128}",
    # Slurm's forms: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S (and no limit)
    "time": r"[0-9]{1,9}(:[0-9]{1,2}){0,2}|[0-9]{1,5}-[0-9]{1,2}(:[0-9]{1,2}){0,2}"
            r"|UNLIMITED|INFINITE|unlimited|infinite",
    "constraint": r"[A-Za-z0-9_.&|,()\[\]*-]{1,256}",
    "nodes": r"[0-9]{1,6}(-[0-9]{1,6})?",
    "ntasks": r"[0-9]{1,7}",
    "ntasks-per-node": r"[0-9]{1,5}",
    "cpus-per-task": r"[0-9]{1,5}",
    "gpus-per-node": r"([A-Za-z0-9_]+:)?[0-9]{1,3}",
    "array": r"[0-9,%-]{1,256}",
    "nodelist": r"[A-Za-z0-9_.,\[\]-]{1,1024}",
}
# What to write instead, where a pattern says too little.
_OPTION_HINT = {"time": "a Slurm time limit: MINUTES, HH:MM:SS or D-HH:MM:SS, e.g. --time 00:30:00"}
_EXTRA_LINE = re.compile(r"^--[a-z][a-z-]*(=[A-Za-z0-9_.,:/%@+=|&-]*)?$")


def check_option(name: str, value: Any) -> str:
    text = str(value)
    pattern = _OPTION_VALUE[name]
    if not re.fullmatch(pattern, text) and name in _OPTION_HINT:
        raise UserError(f"--{name} {text!r} is not {_OPTION_HINT[name]}")
    if not re.fullmatch(pattern, text):
        raise UserError(f"--{name} {text!r} is not accepted: it may only contain "
                        f"characters matching {pattern!r} (no spaces, quotes or newlines)")
    return text


@dataclass
class JobRequest:
    """One sbatch job: Slurm resources under Slurm's names, and the `bench run` it runs."""

    job_name: str
    bench_args: list[str]  # the case selection and timing options, validated already
    run_dir: Path
    workdir: Path
    site: Site
    nodes: int | None = None
    ntasks: int | None = None
    ntasks_per_node: int | None = None
    cpus_per_task: int | None = None
    gpus_per_node: str | None = None
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time: str | None = None
    constraint: str | None = None
    exclusive: bool = False
    array_param: str | None = None
    array_values: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    nodelist: str | None = None
    # Qualifying (see `steps_script`): one single-node step per node of the allocation, and/or
    # two-node steps between node pairs (ring, all, k=N), every step `repeat` times.
    each_node: bool = False
    pairs: str | None = None
    repeat: int = 1

    def sbatch_options(self) -> list[tuple[str, str]]:
        site = self.site
        partition = self.partition or site.default_partition
        if partition and site.partitions and partition not in site.partitions:
            raise UserError(f"partition {partition!r} is not in site {site.name!r} "
                            f"(partitions: {', '.join(site.partitions)})")
        values = {
            "job-name": self.job_name, "partition": partition,
            "account": self.account or site.account, "qos": self.qos or site.qos,
            "time": self.time, "constraint": self.constraint, "nodes": self.nodes,
            "ntasks": self.ntasks, "ntasks-per-node": self.ntasks_per_node,
            "cpus-per-task": self.cpus_per_task, "gpus-per-node": self.gpus_per_node,
            "array": f"0-{len(self.array_values) - 1}" if self.array_values else None,
            "nodelist": self.nodelist,
        }
        return [(k, check_option(k, v)) for k, v in values.items() if v is not None]

    @property
    def stepped(self) -> bool:
        """Whether the job runs pinned steps (--each-node, --pairs) instead of one run."""
        return self.each_node or self.pairs is not None

    def ranks(self) -> bool:
        """Whether the job starts several ranks (then bench launches them with srun/mpirun)."""
        per_node = self.ntasks_per_node or 1
        return (self.ntasks or 0) > 1 or ((self.nodes or 1) * per_node) > 1


def bench_command() -> list[str]:
    return [sys.executable, "-m", "harness"]


def render(req: JobRequest) -> str:
    """The sbatch script. Values are validated (options) or shell-quoted (everything else)."""
    q = shlex.quote
    out_name = "slurm-%A_%a.out" if req.array_values else "slurm-%j.out"
    lines = ["#!/bin/bash"]
    lines += [f"#SBATCH --{k}={v}" for k, v in req.sbatch_options()]
    if req.exclusive:
        lines.append("#SBATCH --exclusive")
    lines.append(f"#SBATCH --output={_plain_path(req.run_dir / out_name)}")
    for extra in req.site.sbatch:
        if not _EXTRA_LINE.match(extra):
            raise UserError(f"site {req.site.name!r}: sbatch line {extra!r} is not a plain "
                            "--option=value")
        lines.append(f"#SBATCH {extra}")
    lines += ["", "# Generated by `bench submit`; every value below is shell-quoted.",
              "set -euo pipefail"]
    for module in req.site.modules:
        lines.append(f"module load {q(module)}")
    for name, value in sorted(req.site.env.items()):
        lines.append(f"export {name}={q(value)}")
    mpi_type_variable = launchers.get(req.site.launcher).mpi_type_variable
    if req.site.mpi and mpi_type_variable:
        lines.append(f"export {mpi_type_variable}={q(req.site.mpi)}")
    lines.append(f"cd {q(str(req.workdir))}")
    args = [*bench_command(), "run", "--no-store", "--run-dir", str(req.run_dir), "-q",
            *req.bench_args]
    for k, v in sorted(req.tags.items()):
        args += ["--tag", f"{k}={v}"]
    cmd = " ".join(q(a) for a in args)
    cmd += ' --tag "slurm_job=${SLURM_ARRAY_JOB_ID:-$SLURM_JOB_ID}"'
    if req.stepped:
        lines += [*steps_script(req, cmd), ""]
        return "\n".join(lines)
    if req.array_values:
        lines.append("values=(" + " ".join(q(v) for v in req.array_values) + ")")
        cmd += f' -p {q(req.array_param + "=")}"${{values[$SLURM_ARRAY_TASK_ID]}}"'
    if req.ranks():
        cmd += f' --launcher {q(req.site.launcher)} -n "$SLURM_NTASKS"'
    lines += [f"exec {cmd}", ""]
    return "\n".join(lines)


PAIRS = re.compile(r"^(ring|all|k=([1-9][0-9]{0,3}))$")
NODES_ENV = "BENCH_NODES"  # the nodes a step is pinned to (cluster/launchers/srun.py)


def pair_stride(pairs: str) -> str:
    """How far apart in the node list the nodes of a pair are, at most, as a shell
    expression: ring 1 (each node and the next), all n-1, k=N N (each node with the next N)."""
    m = PAIRS.match(pairs)
    if m is None:
        raise UserError(f"--pairs {pairs!r}: write ring, all or k=N (each node paired with the "
                        "next N nodes of the allocation)")
    return {"ring": "1", "all": "n - 1"}.get(pairs) or str(int(m.group(2)))


def steps_script(req: JobRequest, cmd: str) -> list[str]:
    """The body of an --each-node / --pairs job: the allocation's nodes from Slurm, then `bench
    run` once per node (one rank, pinned with srun -w) and/or once per node pair (two ranks, one
    on each node of the pair), `repeat` times over, one step after another (steps running at
    once would share the fabric and disturb each other's figures). Each run is tagged with
    its node(s), `nodes=A` or `nodes=A,B`. The job's exit code is 1 when a step failed; every
    step runs either way."""
    lines = ['mapfile -t nodes < <(scontrol show hostnames "$SLURM_JOB_NODELIST")',
             "n=${#nodes[@]}", "status=0",
             "step() {  # step NODES RANKS: one bench run pinned to NODES (comma-separated)",
             f'  {NODES_ENV}="$1" {cmd} --tag "nodes=$1" --launcher srun -n "$2" || status=1',
             "}",
             f"for ((round = 0; round < {int(req.repeat)}; round++)); do"]
    if req.each_node:
        lines.append('  for node in "${nodes[@]}"; do step "$node" 1; done')
    if req.pairs is not None:
        lines += ["  declare -A seen=()",
                  f"  stride=$(( {pair_stride(req.pairs)} ))",
                  "  for ((i = 0; i < n; i++)); do",
                  "    for ((d = 1; d <= stride; d++)); do",
                  "      j=$(( (i + d) % n )); [ \"$i\" -eq \"$j\" ] && continue",
                  "      a=$(( i < j ? i : j )); b=$(( i < j ? j : i ))",
                  '      [ -n "${seen[$a,$b]:-}" ] && continue',
                  "      seen[$a,$b]=1",
                  '      step "${nodes[$a]},${nodes[$b]}" 2',
                  "    done",
                  "  done"]
    lines += ["done", 'exit "$status"']
    return lines


def _plain_path(path: Path) -> str:
    text = str(path)
    if re.search(r"[\s\"'\\$`]", text):
        raise UserError(f"results folder {text!r} contains spaces or quotes, which #SBATCH "
                        "--output cannot carry; choose another --run-dir")
    return text


def _slurm(cmd: list[str], what: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which(cmd[0])
    if exe is None:
        raise UserError(f"no Slurm here: {cmd[0]} is not installed or not on PATH "
                        "(`bench submit --dry-run` still prints the script)")
    try:
        return subprocess.run([exe, *cmd[1:]], capture_output=True, text=True,
                              timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise UserError(f"{what}: {cmd[0]} did not answer within {TIMEOUT_S} s; is slurmctld "
                        "running? (SLURM_CONF)") from None


def submit(script: Path) -> str:
    proc = _slurm(["sbatch", "--parsable", str(script)], "sbatch")
    if proc.returncode != 0:
        msg = " ".join(proc.stderr.split()) or f"exit code {proc.returncode}"
        raise UserError(f"sbatch refused the job: {msg}")
    job_id = proc.stdout.strip().split(";")[0]
    if not job_id.isdigit():
        raise UserError(f"sbatch answered {proc.stdout.strip()!r}, not a job id")
    return job_id


def cancel(job_id: str) -> None:
    if not re.fullmatch(r"[0-9]+(_[0-9]+)?", job_id):
        raise UserError(f"{job_id!r} is not a Slurm job id")
    proc = _slurm(["scancel", job_id], "scancel")
    if proc.returncode != 0:
        raise UserError(f"scancel refused: {' '.join(proc.stderr.split())}")


@dataclass
class JobState:
    job_id: str
    state: str
    reason: str = ""
    exit_code: str = ""
    source: str = ""


def _parse_scontrol(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for token in text.split():
        key, sep, value = token.partition("=")
        if sep and key not in fields:
            fields[key] = value
    return fields


def job_states(job_ids: Sequence[str]) -> dict[str, list[JobState]]:
    """States per submitted job id (an array has one entry per task): squeue while the job is
    alive, then scontrol (recently finished), then sacct where accounting exists."""
    out: dict[str, list[JobState]] = {j: [] for j in job_ids}
    if not job_ids:
        return out
    if shutil.which("squeue"):
        proc = _slurm(["squeue", "-h", "-r", "-j", ",".join(job_ids), "-o", "%i|%T|%r"],
                      "squeue")
        if proc.returncode == 0:
            for line in proc.stdout.splitlines():
                jid, state, reason = ([*line.split("|"), "", ""])[:3]
                base = jid.split("_")[0]
                if base in out:
                    out[base].append(JobState(jid, state, "" if reason == "None" else reason,
                                              source="squeue"))
    for base in [j for j, states in out.items() if not states]:
        if shutil.which("scontrol"):
            proc = _slurm(["scontrol", "-o", "show", "job", base], "scontrol")
            if proc.returncode == 0:
                for line in proc.stdout.splitlines():
                    f = _parse_scontrol(line)
                    task = f.get("ArrayTaskId")
                    jid = f"{base}_{task}" if task and task != "N/A" else f.get("JobId", base)
                    reason = f.get("Reason", "")
                    out[base].append(JobState(jid, f.get("JobState", "UNKNOWN"),
                                              "" if reason == "None" else reason,
                                              f.get("ExitCode", ""), "scontrol"))
        if not out[base] and shutil.which("sacct"):
            proc = _slurm(["sacct", "-n", "-P", "-X", "-j", base, "-o",
                           "JobID,State,ExitCode,Reason"], "sacct")
            if proc.returncode == 0:
                for line in proc.stdout.splitlines():
                    jid, state, code, reason = ([*line.split("|"), "", "", ""])[:4]
                    out[base].append(JobState(jid, state.split()[0] if state else "UNKNOWN",
                                              reason, code, "sacct"))
    return out


def record_job(run_dir: Path, entry: dict[str, Any]) -> None:
    (run_dir / REGISTRY).parent.mkdir(parents=True, exist_ok=True)
    with open(run_dir / REGISTRY, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry) + "\n")


def recorded_jobs(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / REGISTRY
    if not path.is_file():
        return []
    jobs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            jobs.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return jobs


def failure_reason(run_dir: Path, job: JobState) -> str:
    """The `bench: error:` line (or the last line) of a failed job's output file."""
    name = (f"slurm-{job.job_id}.out" if "_" not in job.job_id
            else f"slurm-{job.job_id.split('_')[0]}_{job.job_id.split('_')[1]}.out")
    path = run_dir / name
    if not path.is_file():
        return job.reason
    lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("bench: error:")]
    return (errors or lines or [job.reason])[-1]


def as_dict(req: JobRequest) -> dict[str, Any]:
    d = asdict(req)
    d["run_dir"], d["workdir"], d["site"] = str(req.run_dir), str(req.workdir), req.site.name
    return d
