"""The bad inputs of tests/test_bad_input.py::test_bad_input: one row per distinct input, each
(id, argv, words the error line must hold). Every one must end with exit code 2, exactly one line
on stderr, no traceback, and the store and the folder unchanged.

In argv, {F} is tests/fixtures/bad_input (files that are wrong on purpose: binary, not UTF-8,
malformed fabric, site and run files, plugins that fail), {S} is tests/fixtures/suites/bad. The
working folder holds a store with one finished run (bench.db, bench-runs/), a regular file
`afile` and an empty folder `adir`.
"""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"
BAD_FILES = FIXTURES / "bad_input"
BAD_SUITES = FIXTURES / "suites" / "bad"
HUGE = "9" * 30
VERY_LONG = "9" * 5000  # more digits than int() converts by default
ESC = "\x1b[31m"

Row = tuple[str, list[str], tuple[str, ...]]
TABLE: list[Row] = []


def add(group: str, rows: dict[str, tuple[list[str], tuple[str, ...]]],
        prefix: tuple[str, ...] = ()) -> None:
    for name, (args, needles) in rows.items():
        TABLE.append((f"{group}: {name}", [*prefix, *args], needles))


# -- bench run: selection, parameters, timing, launchers, plugins, profiling ---------------------

RUN = ("run", "--budget", "0.1", "--quiet")
add("run", {
    "unknown workload": (["-w", "nope"], ("unknown workload 'nope'", "spin")),
    "unknown workload close": (["-w", "spinn"], ("did you mean 'spin'",)),
    "workload with escape": (["-w", f"spin{ESC}"], ("\\x1b[31m",)),
    "workload with newline": (["-w", "spin\nx"], ("unknown workload",)),
    "empty workload": (["-w", ""], ("no workload given",)),
    "unknown backend": (["-w", "spin", "-b", "nope:cpu"], ("unknown backend 'nope'",)),
    "unknown device kind": (["-w", "gemm", "-b", "torch:tpu"], ("has no device 'tpu'",)),
    "empty backend model": (["-w", "spin", "-b", ":cpu"], ("backend",)),
    "device with two indexes": (["-w", "spin", "-b", "numpy:cpu:7:9"], ("numpy:cpu:N",)),
    "device index not a number": (["-w", "spin", "-b", "numpy:cpu:x"], ("numpy:cpu:N",)),
    "opencl with three parts": (["-w", "gemm", "-b", "opencl:0:1:2"], ("PLATFORM[:DEVICE]",)),
    "workload not on backend": (["-w", "spin", "-b", "torch:cpu"], ("does not run on",)),
    "unknown parameter": (["-w", "spin", "-p", "foo=1"], ("'foo'", "us")),
    "wrong type float": (["-w", "spin", "-p", "us=abc"], ("'us'", "expected a number")),
    "wrong type int": (["-w", "gemm", "-p", "m=1.5"], ("'m'",)),
    "below minimum": (["-w", "spin", "-p", "us=-1"], ("'us'", "minimum")),
    "above maximum": (["-w", "gemm", "-p", "m=1000000000"], ("'m'", "maximum")),
    "param nan": (["-w", "spin", "-p", "us=nan"], ("'us'",)),
    "param inf": (["-w", "spin", "-p", "us=inf"], ("'us'",)),
    "param huge int": (["-w", "gemm", "-p", f"m={HUGE}"], ("'m'",)),
    "choice not offered": (["-w", "gemm", "-p", "dtype=float8"], ("'dtype'", "float32")),
    "choice with newline": (["-w", "gemm", "-p", "dtype=float32\nx"], ("'dtype'",)),
    "size not a size": (["-w", "stream", "-p", "size=lots"], ("'size'",)),
    "param without =": (["-w", "spin", "-p", "us"], ("-p 'us'", "key=value")),
    "param without value": (["-w", "spin", "-p", "us="], ("key=value",)),
    "param without key": (["-w", "spin", "-p", "=1"], ("key=value",)),
    "sweep factor 1": (["-w", "allreduce", "-b", "mpi", "-p", "size=8B..1KiB*1"],
                       ("never ends",)),
    "sweep step 0": (["-w", "allreduce", "-b", "mpi", "-p", "size=8B..1KiB+0"],
                     ("never ends",)),
    "sweep backwards": (["-w", "allreduce", "-b", "mpi", "-p", "size=1KiB..8B*2"],
                        ("ends before it starts",)),
    "sweep step not a number": (["-w", "allreduce", "-b", "mpi", "-p", "size=8B..1KiB*x"],
                                ("not a number",)),
    "tag without =": (["-w", "spin", "--tag", "oops"], ("--tag 'oops'", "key=value")),
    "tag without key": (["-w", "spin", "--tag", "=x"], ("key=value",)),
    "budget negative": (["-w", "spin", "--budget", "-1"], ("budget", "positive")),
    "budget zero": (["-w", "spin", "--budget", "0"], ("budget", "positive")),
    "budget nan": (["-w", "spin", "--budget", "nan"], ("--budget", "finite")),
    "budget inf": (["-w", "spin", "--budget", "inf"], ("--budget", "finite")),
    "budget minus inf": (["-w", "spin", "--budget", "-inf"], ("--budget", "finite")),
    "budget a word": (["-w", "spin", "--budget", "fast"], ("--budget",)),
    "budget beyond a day": (["-w", "spin", "--budget", "1e300"], ("budget", "at most")),
    "target-ci negative": (["-w", "spin", "--target-ci", "-1"], ("target_ci",)),
    "target-ci nan": (["-w", "spin", "--target-ci", "nan"], ("--target-ci", "finite")),
    "target-ci above 1": (["-w", "spin", "--target-ci", "2"], ("target_ci", "at most")),
    "min block time negative": (["-w", "spin", "--min-block-time", "-0.001"],
                                ("min_block_time", ">= 0")),
    "min block time huge": (["-w", "spin", "--min-block-time", "1e9"],
                            ("min_block_time", "at most")),
    "min samples zero": (["-w", "spin", "--min-samples", "0"], ("min_samples",)),
    "min samples negative": (["-w", "spin", "--min-samples", "-5"], ("min_samples",)),
    "min samples for ever": (["-w", "spin", "--min-samples", "10000000"],
                             ("min_samples", "at most")),
    "max samples zero": (["-w", "spin", "--max-samples", "0"], ("max_samples",)),
    "max samples not whole": (["-w", "spin", "--max-samples", "1.5"], ("--max-samples",)),
    "max samples beyond int64": (["-w", "spin", "--max-samples", HUGE],
                                 ("max_samples", "at most")),
    "min over max samples": (["-w", "spin", "--min-samples", "20", "--max-samples", "5"],
                             ("min_samples", "max_samples")),
    "rounds zero": (["-w", "spin", "--rounds", "0"], ("--rounds",)),
    "rounds above 20": (["-w", "spin", "--rounds", "21"], ("--rounds",)),
    "rounds a word": (["-w", "spin", "--rounds", "x"], ("--rounds",)),
    "timeout nan": (["-w", "spin", "--timeout", "nan"], ("--timeout", "finite")),
    "timeout inf": (["-w", "spin", "--timeout", "inf"], ("--timeout", "finite")),
    "timeout below half a second": (["-w", "spin", "--timeout", "0.1"], ("--timeout",)),
    "timeout negative": (["-w", "spin", "--timeout", "-1"], ("--timeout",)),
    "launcher unknown": (["-w", "spin", "--launcher", "foo"], ("--launcher", "mpirun")),
    "ranks zero": (["-w", "spin", "-n", "0"], ("--nranks",)),
    "ranks negative": (["-w", "spin", "-n", "-1"], ("--nranks",)),
    "ranks a word": (["-w", "spin", "-n", "x"], ("--nranks",)),
    "unknown option": (["-w", "spin", "--nope"], ("No such option",)),
    "option without value": (["-w"], ("-w",)),
    "no selection": ([], ("nothing to run", "--suite")),
    "suite and workload": (["--suite", "smoke", "-w", "spin"], ("--suite", "not both")),
    "suite and param": (["--suite", "smoke", "-p", "us=1"], ("not both",)),
    "unknown suite": (["--suite", "nope"], ("unknown suite 'nope'", "smoke")),
    "suite is a folder": (["--suite", "adir"], ("adir is a folder",)),
    "suite is binary": (["--suite", "{F}/binary.bin"], ("not a UTF-8 text file",)),
    "suite is empty": (["--suite", "{F}/empty.txt"], ("[[matrix]]",)),
    "plugin missing": (["-w", "spin", "--plugin", "nope.py"], ("plugin file not found",)),
    "plugin is a folder": (["-w", "spin", "--plugin", "adir"], ("--plugin",)),
    "plugin import error": (["--plugin", "{F}/plugin_import_error.py", "-w", "spin"],
                            ("failed to import", "no_such_module_for_accelbench")),
    "plugin syntax error": (["--plugin", "{F}/plugin_syntax_error.py", "-w", "spin"],
                            ("failed to import", "SyntaxError")),
    "plugin raises two lines": (["--plugin", "{F}/plugin_raises.py", "-w", "spin"],
                                ("failed to import", "refuses\\nover two lines")),
    "plugin workload name escape": (["--plugin", "{F}/plugin_bad_name.py", "-w", "spin"],
                                    ("workload name", "\\x1b", "not allowed")),
    "plugin parameter name": (["--plugin", "{F}/plugin_bad_param.py", "-w", "spin"],
                              ("parameter name", "not allowed")),
    "plugin not python": (["--plugin", "{F}/binary.bin", "-w", "spin"], ("binary.bin",)),
    "profile iters without profile": (["-w", "spin", "--profile-iters", "3"],
                                      ("need --profile",)),
    "profile iters zero": (["-w", "spin", "--profile", "--profile-iters", "0"],
                           ("--profile-iters",)),
    "profile iters 1000": (["-w", "spin", "--profile", "--profile-iters", "1000"],
                           ("--profile-iters",)),
    "profile max mb zero": (["-w", "spin", "--profile", "--profile-max-mb", "0"],
                            ("--profile-max-mb",)),
    "profile max mb nan": (["-w", "spin", "--profile", "--profile-max-mb", "nan"],
                           ("--profile-max-mb", "finite")),
}, RUN)

# Every malformed suite of the fixture tree, through the command line.
add("run --suite", {p.stem: (["--suite", str(p)], (p.name,))
                    for p in sorted(BAD_SUITES.glob("*.toml"))}, RUN)

# -- stores ---------------------------------------------------------------------------------------

STORES: dict[str, tuple[str, tuple[str, ...]]] = {
    "empty": ("", ("--store is empty",)),
    "in memory": ("sqlite://", ("in-memory",)),
    "in memory by name": ("sqlite:///:memory:", ("in-memory",)),
    "mysql": ("mysql://u@localhost/db", ("unsupported database kind 'mysql'",)),
    "postgres driver not installed": ("postgresql+pg8000://u@127.0.0.1:1/db",
                                      ("'pg8000' is not installed", "postgresql+psycopg://")),
    "unknown dialect": ("notadialect://x", ("unsupported database kind",)),
    "unparseable": ("postgresql://::bad", ("cannot parse store URL",)),
    "port not a number": ("postgresql://u@h:notaport/db", ("cannot parse store URL",)),
    "a folder": ("adir", ("is a directory",)),
    "in a missing folder": ("missing/bench.db", ("does not exist",)),
    "under a file": ("afile/bench.db", ("does not exist",)),
}
for cmd in (["runs"], ["show", "latest"], ["ingest", "bench-runs"]):
    add(f"{cmd[0]} --store", {name: ([*cmd, "--store", ref], needles)
                              for name, (ref, needles) in STORES.items()})
add("run --store", {name: (["-w", "spin", "--store", ref], needles)
                    for name, (ref, needles) in STORES.items()}, RUN)
add("read a store that does not exist", {
    "runs": (["runs", "--store", "typo.db"], ("no such store 'typo.db'",)),
    "show": (["show", "latest", "--store", "typo.db"], ("no such store",)),
    "export": (["export", "-o", "x.csv", "--store", "typo.db"], ("no such store",)),
    "compare": (["compare", "latest", "latest", "--store", "typo.db"], ("no such store",)),
    "history": (["history", "spin", "--store", "typo.db"], ("no such store",)),
    "report": (["report", "latest", "-o", "r.html", "--store", "typo.db"], ("no such store",)),
    "model fit": (["fabric-model", "fit", "latest", "--store", "typo.db"], ("no such store",)),
    "profile summarize": (["profile", "summarize", "latest", "--store", "typo.db"],
                          ("no such store",)),
})

# -- reading commands -----------------------------------------------------------------------------

add("runs", {
    "limit zero": (["runs", "-n", "0"], ("--limit",)),
    "limit negative": (["runs", "-n", "-1"], ("--limit",)),
    "limit a word": (["runs", "-n", "x"], ("--limit",)),
    "limit a float": (["runs", "-n", "1.5"], ("--limit",)),
})
add("show", {
    "unknown id": (["show", "nope"], ("no run 'nope'",)),
    "latest too far": (["show", "latest~5"], ("latest~5", "holds 1 run")),
    "latest beyond int64": (["show", f"latest~{HUGE}"], ("holds 1 run",)),
    "latest beyond int()": (["show", f"latest~{VERY_LONG}"], ("no run",)),
    "latest negative": (["show", "latest~-1"], ("no run",)),
    "empty reference": (["show", ""], ("empty run reference",)),
    "like wildcard": (["show", "%"], ("no run '%'",)),
    "tag without =": (["show", "tag:branch"], ("tag:KEY=VALUE",)),
    "tag without key": (["show", "tag:=x"], ("tag:KEY=VALUE",)),
    "tag not found": (["show", "tag:branch=nope"], ("no run tagged branch=nope",)),
    "escape in reference": (["show", f"x{ESC}"], ("\\x1b[31m",)),
    "two references": (["show", "latest", "latest~1"], ("unexpected extra argument",)),
})
add("export", {
    "unknown format by name": (["export", "-o", "x.xlsx"], ("x.xlsx", "--format")),
    "unknown format option": (["export", "-o", "x.csv", "--format", "xlsx"], ("--format",)),
    "no output": (["export"], ("-o",)),
    "folder missing": (["export", "-o", "nope/x.csv"], ("does not exist",)),
    "folder is a file": (["export", "-o", "afile/x.csv"], ("afile is a file",)),
    "output is a folder": (["export", "-o", "adir"], ("adir",)),
    "unwritable place": (["export", "-o", "/proc/x.csv"], ("cannot write /proc/x.csv",)),
    "unknown run": (["export", "nope", "-o", "x.csv"], ("no run 'nope'",)),
    "latest too far": (["export", "latest~9", "-o", "x.csv"], ("latest~9",)),
    "nccl-tests without collectives": (["export", "--format", "nccl-tests", "-o", "x.txt"],
                                       ("no collective measurements",)),
    "nccl-tests unwritable": (["export", "--format", "nccl-tests", "-o", "afile/x.txt"],
                              ("afile is a file",)),
    "samples unwritable": (["export", "--samples", "-o", "/proc/s.csv"], ("/proc/s.csv",)),
})
add("compare", {
    "unknown base": (["compare", "nope", "latest"], ("no run 'nope'",)),
    "unknown head": (["compare", "latest", "nope"], ("no run 'nope'",)),
    "missing head": (["compare", "latest"], ("HEAD",)),
    "threshold zero": (["compare", "latest", "latest", "--threshold", "0"], ("--threshold",)),
    "threshold one": (["compare", "latest", "latest", "--threshold", "1"], ("--threshold",)),
    "threshold negative": (["compare", "latest", "latest", "--threshold", "-5"],
                           ("--threshold",)),
    "threshold nan": (["compare", "latest", "latest", "--threshold", "nan"], ("finite",)),
    "fdr zero": (["compare", "latest", "latest", "--fdr", "0"], ("--fdr",)),
    "fdr two": (["compare", "latest", "latest", "--fdr", "2"], ("--fdr",)),
    "fdr inf": (["compare", "latest", "latest", "--fdr", "inf"], ("finite",)),
    "html without file": (["compare", "latest", "latest", "--format", "html"], ("needs -o",)),
    "format unknown": (["compare", "latest", "latest", "--format", "docx"], ("--format",)),
    "fail-on unknown": (["compare", "latest", "latest", "--fail-on", "always"], ("--fail-on",)),
    "output unwritable": (["compare", "latest", "latest", "--format", "markdown", "-o",
                           "/proc/c.md"], ("cannot write /proc/c.md",)),
    "output under a file": (["compare", "latest", "latest", "-o", "afile/c.txt"],
                            ("afile is a file",)),
    "output is a folder": (["compare", "latest", "latest", "-o", "adir"], ("adir",)),
    "run file missing": (["compare", "latest", "nope.jsonl"], ("no such run file",)),
    "run file not a run": (["compare", "latest", "{F}/run_not_a_run.jsonl"],
                           ("not an accelbench run file",)),
})
add("history", {
    "threshold negative": (["history", "spin", "--threshold", "-5"], ("--threshold",)),
    "threshold zero": (["history", "spin", "--threshold", "0"], ("--threshold",)),
    "threshold nan": (["history", "spin", "--threshold", "nan"], ("finite",)),
    "threshold inf": (["history", "spin", "--threshold", "inf"], ("finite",)),
    "last one": (["history", "spin", "--last", "1"], ("--last",)),
    "last a word": (["history", "spin", "--last", "x"], ("--last",)),
    "no such case": (["history", "gemm"], ("no case matches 'gemm'",)),
    "case with newline": (["history", "spin\nfoo"], ("'spin\\nfoo'",)),
    "tag without =": (["history", "spin", "--tag", "branch"], ("key=value",)),
    "tag matches no run": (["history", "spin", "--tag", "x=y"], ("no runs match",)),
    "no case": (["history"], ("CASE",)),
})
add("report", {
    "docx is not html": (["report", "latest", "-o", "r.docx"], ("writes HTML", "r.html")),
    "no extension": (["report", "latest", "-o", "r"], ("writes HTML",)),
    "no output": (["report", "latest"], ("-o",)),
    "no run": (["report", "html", "-o", "r.html"], ("at least one RUN",)),
    "unknown run": (["report", "nope", "-o", "r.html"], ("no run 'nope'",)),
    "output unwritable": (["report", "latest", "-o", "/proc/r.html"], ("/proc/r.html",)),
    "output under a file": (["report", "latest", "-o", "afile/r.html"], ("afile is a file",)),
    "output in missing folder": (["report", "latest", "-o", "nope/r.html"],
                                 ("does not exist",)),
    "plots into a file": (["report", "latest", "-o", "r.html", "--plots", "afile"],
                          ("--plots",)),
    "plots unwritable": (["report", "latest", "-o", "r.html", "--plots", "/proc/p"],
                         ("/proc/p", "--plots")),
    "plots under a file": (["report", "latest", "-o", "r.html", "--plots", "afile/p"],
                           ("afile is a file",)),
    "roofline not an image": (["report", "roofline", "latest", "-o", "r.txt"],
                              ("not an image format",)),
    "scaling unknown extension": (["report", "scaling", "latest", "-o", "r.bogus"],
                                  ("not an image format",)),
})
add("ingest", {
    "missing path": (["ingest", "nope.jsonl"], ("no such run file",)),
    "folder without run files": (["ingest", "{F}/folder"], ("no run files",)),
    "empty folder": (["ingest", "adir"], ("no run files",)),
    "not a run file": (["ingest", "{F}/run_not_a_run.jsonl"], ("not an accelbench run file",)),
    "no header": (["ingest", "{F}/run_no_header.jsonl"], ("not an accelbench run file",)),
    "newer format": (["ingest", "{F}/run_future_format.jsonl"], ("newer",)),
    "torn middle line": (["ingest", "{F}/run_torn_middle.jsonl"], (":2", "corrupt")),
    "binary file": (["ingest", "{F}/binary.bin"], ("binary.bin",)),
    "not UTF-8": (["ingest", "{F}/latin1.txt"], ("latin1.txt",)),
    "empty file": (["ingest", "{F}/empty.txt"], ("not an accelbench run file",)),
    "no path": (["ingest"], ("PATHS",)),
})

# -- the model ------------------------------------------------------------------------------------

PREDICT = ("fabric-model", "predict", "--fabric", "ndr")
add("model predict", {
    "nodes zero": (["--nodes", "0"], ("--nodes",)),
    "nodes negative": (["--nodes", "-1"], ("--nodes",)),
    "nodes a word": (["--nodes", "x"], ("--nodes",)),
    "nodes exponent": (["--nodes", "1e26"], ("--nodes",)),
    "nodes huge": (["--nodes", HUGE], ("--nodes", "1,000,000")),
    "nodes empty": (["--nodes", ""], ("--nodes",)),
    "size zero": (["--size", "0"], ("--size", "between 1 byte")),
    "size beyond 1 EiB": (["--size", "2EiB"], ("--size",)),
    "size negative": (["--size", "-1"], ("--size",)),
    "size a word": (["--size", "abc"], ("--size",)),
    "size only commas": (["--size", ","], ("names no size",)),
    "step time negative": (["--gradient-bytes", "1GB", "--step-time", "-1"], ("--step-time",)),
    "step time zero": (["--gradient-bytes", "1GB", "--step-time", "0"], ("--step-time",)),
    "step time nan": (["--gradient-bytes", "1GB", "--step-time", "nan"], ("finite",)),
    "step time inf": (["--gradient-bytes", "1GB", "--step-time", "inf"], ("finite",)),
    "step time huge": (["--gradient-bytes", "1GB", "--step-time", "1e300"], ("--step-time",)),
    "gradient without step time": (["--gradient-bytes", "1GB"], ("together",)),
    "step time without gradient": (["--step-time", "1"], ("together",)),
    "gradient zero": (["--gradient-bytes", "0", "--step-time", "1"], ("--gradient-bytes",)),
    "gradient negative": (["--gradient-bytes", "-1GB", "--step-time", "1"],
                          ("--gradient-bytes",)),
    "overlap above 1": (["--overlap", "1.5"], ("--overlap",)),
    "overlap negative": (["--overlap", "-0.1"], ("--overlap",)),
    "overlap nan": (["--overlap", "nan"], ("finite",)),
    "collective unknown": (["--collective", "scatter"], ("--collective",)),
}, PREDICT)
add("model predict --fabric", {
    "unknown": (["nope"], ("unknown fabric 'nope'", "no such file")),
    "a folder": (["adir"], ("adir is a folder",)),
    "binary": (["{F}/binary.bin"], ("not UTF-8",)),
    "not UTF-8": (["{F}/latin1.txt"], ("not UTF-8",)),
    "empty": (["{F}/empty.txt"], ("not a fabric file",)),
    "a list": (["{F}/fabric_list.json"], ("not a fabric file",)),
    "nan": (["{F}/fabric_nan.json"], ("alpha_s",)),
    "negative alpha": (["{F}/fabric_negative.json"], ("alpha_s",)),
    "zero beta": (["{F}/fabric_zero_beta.json"], ("beta_bytes_per_s",)),
    "alpha a word": (["{F}/fabric_string.json"], ("alpha_s",)),
    "unknown key": (["{F}/fabric_unknown_key.json"], ("gamma",)),
    "truncated": (["{F}/fabric_truncated.json"], ("not a fabric file",)),
}, ("fabric-model", "predict", "--fabric"))
add("model fit", {
    "no sweeps": (["fabric-model", "fit", "latest"], ("at least two measured sizes",)),
    "unknown run": (["fabric-model", "fit", "nope"], ("no run 'nope'",)),
    "algorithm unknown": (["fabric-model", "fit", "latest", "--algorithm", "star"],
                          ("--algorithm",)),
    "output is a folder": (["fabric-model", "fit", "latest", "-o", "adir"], ("adir",)),
    "output under a file": (["fabric-model", "fit", "latest", "-o", "afile/f.json"],
                            ("afile is a file",)),
})

# -- Slurm (dry runs: nothing is submitted) and sites -------------------------------------

SUBMIT = ("submit", "--dry-run", "-w", "spin")
add("submit", {
    "time negative": (["--time", "-5"], ("--time", "Slurm time limit")),
    "time colons": (["--time", ":::"], ("--time",)),
    "time trailing colons": (["--time", "5::"], ("--time",)),
    "time two dashes": (["--time", "1-2-3"], ("--time",)),
    "budget negative": (["--budget", "-3"], ("budget",)),
    "target-ci nan": (["--target-ci", "nan"], ("finite",)),
    "nodes zero": (["--nodes", "0"], ("--nodes",)),
    "job name with space": (["--job-name", "a b"], ("--job-name",)),
    "job name with newline": (["--job-name", "a\n#SBATCH --x"], ("--job-name",)),
    "partition with semicolon": (["--partition", "x;y"], ("--partition",)),
    "account with quote": (["--account", "a'b"], ("--account",)),
    "gpus with space": (["--gpus-per-node", "x y"], ("--gpus-per-node",)),
    "array of no parameter": (["--array", "nope", "-p", "us=1,2"], ("--array nope",)),
    "scaling zero": (["--scaling", "0"], ("--scaling",)),
    "scaling a word": (["--scaling", "x"], ("--scaling",)),
    "site unknown": (["--site", "nope"], ("unknown site 'nope'",)),
    "site a folder": (["--site", "adir"], ("adir is a folder",)),
    "site not UTF-8": (["--site", "{F}/site_not_utf8.toml"], ("not a UTF-8 text file",)),
}, SUBMIT)
add("site check", {p.stem: ([str(p)], (p.name,))
                   for p in sorted(BAD_FILES.glob("site_*.toml"))}, ("site", "check"))
add("site check", {
    "unknown": (["nope"], ("unknown site 'nope'",)),
    "a folder": (["adir"], ("adir is a folder",)),
    "binary": (["{F}/binary.bin"], ("binary.bin",)),
}, ("site", "check"))

# -- the rest -------------------------------------------------------------------------------------

add("env", {
    "unknown backend": (["-b", "nope"], ("unknown backend 'nope'",)),
    "unknown device": (["-b", "torch:tpu"], ("has no device",)),
    "two device indexes": (["-b", "numpy:cpu:7:9"], ("numpy:cpu:N",)),
}, ("env",))
add("list", {
    "unknown kind": (["things"], ("things",)),
    "plugin missing": (["--plugin", "nope.py"], ("plugin file not found",)),
    "plugin import error": (["--plugin", "{F}/plugin_import_error.py"], ("failed to import",)),
}, ("list",))
add("profile", {
    "summarize without traces": (["summarize", "latest"], ("no profile traces",)),
    "summarize unknown run": (["summarize", "nope"], ("no run 'nope'",)),
    "diff without traces": (["diff", "latest", "latest"], ("no profile traces",)),
    "top zero": (["summarize", "latest", "--top", "0"], ("--top",)),
    "unknown subcommand": (["show"], ("No such command",)),
}, ("profile",))
add("collect", {"missing folder": (["collect", "--run-dir", "nope"], ("no results folder",))})
add("ab", {
    "threshold zero": (["--threshold", "0"], ("--threshold",)),
    "workers zero": (["--workers", "0"], ("--workers",)),
    "turn too long": (["--turn", "2"], ("--turn",)),
    "seed negative": (["--seed", "-1"], ("--seed",)),
}, ("ab", "-w", "spin", "--budget", "0.1"))
add("bench", {
    "unknown command": (["nope"], ("No such command 'nope'",)),
    "unknown option": (["--nope"], ("No such option",)),
    "command with escape": ([f"run{ESC}"], ("\\x1b[31m",)),
})
