import subprocess
import sys

import telegraph as tg


def _run(*args):
    return subprocess.run([sys.executable, "-m", "telegraph", *args],
                          capture_output=True, text=True, timeout=300)


def test_version_subprocess():
    r = _run("--version")
    assert r.returncode == 0
    assert tg.__version__ in r.stdout


def test_help_subprocess():
    r = _run("--help")
    assert r.returncode == 0
    assert "k_deg" in r.stdout


def test_console_script_installed():
    import shutil
    exe = shutil.which("telegraph")
    assert exe is not None, "the console script 'telegraph' is not on PATH"
    r = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and tg.__version__ in r.stdout


def test_no_command_prints_help_and_fails():
    r = _run()
    assert r.returncode == 2


def test_version_imports_neither_the_commands_nor_their_libraries():
    """``telegraph --version`` answers before the subcommands (and pandas, Numba,
    SciPy, AnnData with them) are imported: it takes a fraction of a second."""
    code = ("import sys; from telegraph.cli import main; rc = main(['--version']); "
            "print(sorted(m for m in ('pandas', 'numba', 'scipy', 'anndata', 'telegraph.cli.fit')"
            " if m in sys.modules), rc)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [f"telegraph {tg.__version__}", "[] 0"]


def test_a_command_imports_only_its_own_module():
    """``telegraph fit ...`` builds and imports the fit command alone (the
    design command's scipy.stats is half a second of start-up)."""
    code = ("import sys; from telegraph.cli import COMMANDS, build_parser; "
            "a = build_parser('fit').parse_args(['fit', '--example']); "
            "print(a.command, sorted(m for m in COMMANDS if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["fit", "['telegraph.cli.fit']"]


def test_commands_are_named_after_their_modules():
    """What lets ``main`` import only the module of the command named."""
    import argparse

    from telegraph.cli import COMMANDS, build_parser
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert list(sub.choices) == [m.rsplit(".", 1)[1] for m in COMMANDS]


def _collector_during(monkeypatch, argv):
    """Whether the cyclic garbage collector ran when the fit command started and
    once its work started (compile_notice), for main(argv) (None: as the console
    script, arguments from sys.argv)."""
    import gc

    import telegraph.cli.fit as cfit
    from telegraph.cli import _common, main

    seen = {}

    def fake_run(args):
        seen["start"] = gc.isenabled()
        _common.compile_notice("fit")
        seen["work"] = gc.isenabled()
        return 0

    monkeypatch.setattr(cfit, "run", fake_run)
    monkeypatch.setattr(sys, "argv", ["telegraph", "fit", "--example"])
    frozen = gc.get_freeze_count()
    try:
        assert main(argv) == 0
        seen["frozen"] = gc.get_freeze_count() > frozen
        seen["after"] = gc.isenabled()
    finally:
        gc.unfreeze()       # the test process's objects back to the collector
        gc.enable()
    return seen


def test_program_entry_pauses_the_collector_until_the_work_starts(monkeypatch):
    """Run as the program, the start-up runs without the cyclic collector (its full
    passes over the imports' objects cost 0.2-0.4 s) and the work with it, the
    start-up's objects frozen; a caller passing argv keeps its collector as is."""
    assert _collector_during(monkeypatch, None) == {
        "start": False, "work": True, "frozen": True, "after": True}
    assert _collector_during(monkeypatch, ["fit", "--example"]) == {
        "start": True, "work": True, "frozen": False, "after": True}


def test_collector_resumes_when_the_command_fails(monkeypatch):
    import gc

    from telegraph.cli import main
    monkeypatch.setattr(sys, "argv", ["telegraph", "fit"])     # no input: an error
    try:
        assert main() == 2
        assert gc.isenabled()
    finally:
        gc.unfreeze()
        gc.enable()
