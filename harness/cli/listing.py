"""`bench list` and `bench env`: what exists here, and the fingerprint stored with every run."""

from __future__ import annotations

import json
from typing import Any

import click

from harness.cli.args import split_values
from harness.cli.options import json_option
from harness.cli.render import console, print_json


@click.command("list")
@click.argument("what", type=click.Choice(["workloads", "backends", "suites", "all"]),
                default="all")
@click.option("--plugin", "plugins", multiple=True, type=click.Path(dir_okay=False),
              help="Also load workloads from this Python file.")
@click.option("--probe", is_flag=True,
              help="Import each installed framework and look for its devices (seconds), and "
                   "remember the answers; without it, backends not probed before say so.")
@json_option()
def list_(what: str, plugins: tuple[str, ...], probe: bool, as_json: bool) -> None:
    """What exists: workloads (with parameters), backends (usable here or why not), suites.

    Listing imports no framework: whether an installed backend works here is what the last
    `bench list backends --probe` found (while nothing it depends on has changed).

    \b
    Examples:
      bench list
      bench list backends --probe
      bench list workloads --plugin my_workloads.py --json
    """
    from rich.markup import escape
    from rich.table import Table

    from harness.backends.base import registry as backends
    from harness.backends.probe import usability
    from harness.config import builtin_suites, suite_description
    from harness.registry import load_plugin
    from harness.workload import registry as workloads

    for plugin in plugins:
        load_plugin(plugin)
    data: dict[str, Any] = {}
    if what in ("workloads", "all"):
        data["workloads"] = []
        for name in workloads.names():
            cls = workloads.get(name)
            data["workloads"].append({
                "name": name, "description": cls.description, "models": list(cls.backend_models()),
                "params": {k: {"type": p.type, "default": p.default, "help": p.help,
                               "spec": p.describe()} for k, p in cls.params.items()},
                **({"supports": cls.supports_by_model()} if hasattr(cls, "supports_by_model")
                   else {})})
    if what in ("backends", "all"):
        listed = [(name, backends.get(name), device) for name in backends.names()
                  for device in backends.get(name).devices]
        found = usability([(f"{name}:{device if device != '*' else '0'}", cls)
                           for name, cls, device in listed], probe=probe)
        data["backends"] = [
            {"backend": f"{name}:{device}" if device != "*" else f"{name}:<platform>[:<device>]",
             "usable": u.usable, "reason": u.reason, "description": cls.description}
            for (name, cls, device), u in zip(listed, found, strict=True)]
    if what in ("suites", "all"):
        data["suites"] = [{"name": n, "path": str(p), "description": suite_description(p)}
                          for n, p in builtin_suites().items()]
    if as_json:
        print_json(data)
        return
    out = console()
    if "workloads" in data:
        t = Table(title="workloads", title_justify="left")
        for col in ("workload", "backends", "parameters", "description"):
            t.add_column(col, overflow="fold")
        for w in data["workloads"]:
            ps = "\n".join(f"{k} ({v['spec']})" for k, v in w["params"].items())
            t.add_row(w["name"], ", ".join(w["models"]), escape(ps), escape(w["description"]))
        out.print(t)
    if "backends" in data:
        t = Table(title="backends", title_justify="left")
        for col in ("backend", "usable here", "description / why not"):
            t.add_column(col, overflow="fold")
        for b in data["backends"]:
            mark = {True: "[green]yes[/green]", False: "[red]no[/red]"}.get(b["usable"],
                                                                            "[yellow]?[/yellow]")
            t.add_row(b["backend"], mark, escape(b["description"] if b["usable"] else b["reason"]))
        out.print(t)
    if "suites" in data:
        t = Table(title="suites", title_justify="left")
        t.add_column("suite")
        t.add_column("description", overflow="fold")
        for s in data["suites"]:
            t.add_row(s["name"], escape(s["description"]))
        out.print(t)


@click.command()
@click.option("--backend", "-b", "backends", multiple=True, metavar="MODEL:DEVICE",
              help="Also describe these backends' devices (imports their frameworks).")
@json_option()
def env(backends: tuple[str, ...], as_json: bool) -> None:
    """The environment fingerprint stored with every run.

    \b
    Examples:
      bench env
      bench env -b torch:cpu,numpy:cpu
      bench env --json > env.json
    """
    from harness.backends.base import parse_backend
    from harness.env import env_hash, fingerprint, git_revision

    described = []
    for spec in split_values(backends):
        b = parse_backend(spec)
        b.setup()
        described.append(b.describe())
    from cluster.fabric import detect

    fp = fingerprint(described)
    fp["fabric"] = detect()
    data = {"env_hash": env_hash(fp), "git": git_revision(), **fp}
    if as_json:
        print_json(data)
        return
    cpu = fp["cpu"]
    lines = [
        ("hash", data["env_hash"]),
        ("host", fp["host"]),
        ("os", f"{fp['os']['system']} {fp['os']['release']} ({fp['os']['machine']})"),
        ("cpu", f"{cpu['model']}: {cpu['logical_cores']} logical, {cpu['physical_cores']} "
                f"physical, {cpu['usable_cores']} usable"),
        ("cpu flags", " ".join(f for f in cpu["flags"] if f.startswith(("avx", "fma", "amx",
                                                                       "sse4", "neon", "sve")))),
        ("memory", f"{(fp['memory_bytes'] or 0) / 2**30:.1f} GiB"),
        ("python", fp["python"]["version"]),
        ("libraries", ", ".join(f"{k} {v}" for k, v in fp["libraries"].items())),
        ("accelerators", json.dumps(fp["accelerators"]) if fp["accelerators"] else "none seen"),
        ("fabric", _fabric_line(fp["fabric"])),
        ("env vars", ", ".join(f"{k}={v}" for k, v in fp["env"].items()) or "none set"),
        ("git", (data["git"] or {}).get("revision", "not in a git repository")),
    ]
    lines += [(f"backend {d['backend']}", json.dumps({k: v for k, v in d.items()
                                                      if k != "backend"})) for d in described]
    width = max(len(k) for k, _ in lines)
    for k, v in lines:
        click.echo(f"{k:<{width}}  {v}")


def _fabric_line(f: dict[str, Any]) -> str:
    ports = [f"{d['name']}:{p['port']} {p['state']} {p['rate'] or ''}".strip()
             for d in f["rdma_devices"] for p in d["ports"]]
    nics = [f"{n['name']} {n['operstate']}" + (f" {n['speed_mbps']} Mb/s" if n["speed_mbps"]
                                                else "") for n in f["nics"]]
    return f"{f['fabric']}; " + ", ".join(ports + nics)


COMMANDS = [list_, env]
