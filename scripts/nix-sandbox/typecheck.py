"""Type-checks and lints the VM test scripts as nixpkgs' test driver does
before it runs them (nixos/lib/testing/driver.nix):

- mypy --no-implicit-optional --pretty --no-color-output on the script with
  the driver's type hints prepended (checks/typing/test-script-prepend.py,
  one `NAME: Machine;` per node on one line, `vlan1: VLan`), against the
  typed stub of the driver in checks/typing/test_driver;
- pyflakes on the script alone, with the node names and the driver's
  symbols as builtins (PYFLAKES_BUILTINS).

    python typecheck.py TYPING_DIR WORK_DIR < vmTests.json

vmTests.json is `nix-instantiate --eval --strict --json checks/eval -A
vmTests`. Run it with the Python that has mypy and pyflakes. Prints one
`PASS name` or `FAIL name` line (with the tool's output) per check; exits 1
when one failed.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

# nixpkgs 25.11 runs the driver with Python 3.13.
PYTHON_VERSION = "3.13"

# The names the driver puts into a test script's globals
# (Driver.test_symbols, nixos/lib/test-driver/src/test_driver/driver.py).
DRIVER_SYMBOLS = [
    "start_all",
    "test_script",
    "machines",
    "vlans",
    "driver",
    "log",
    "os",
    "create_machine",
    "subtest",
    "run_tests",
    "join_all",
    "retry",
    "serial_stdout_off",
    "serial_stdout_on",
    "polling_condition",
    "Machine",
    "debug",
    "t",
]


def pythonize(name: str) -> str:
    """A node name as the driver names its variable (driver.nix)."""
    head = name[:1] if re.fullmatch(r"[A-z_]", name[:1]) else "_"
    return head + "".join(c if re.fullmatch(r"[A-z0-9_]", c) else "_" for c in name[1:])


def report(tool: str, name: str, run: "subprocess.CompletedProcess[str]") -> int:
    """Prints PASS or FAIL (with the tool's output) for one check; 1 if it failed."""
    if run.returncode == 0:
        print(f"PASS {tool}: {name}")
        return 0
    print(f"FAIL {tool}: {name}")
    for line in (run.stdout + run.stderr).splitlines():
        print(f"     {line}")
    return 1


def main() -> int:
    typing_dir = Path(sys.argv[1]).resolve()
    work = Path(sys.argv[2])
    work.mkdir(parents=True, exist_ok=True)
    tests = json.load(sys.stdin)
    prepend = (typing_dir / "test-script-prepend.py").read_text()
    bindir = Path(sys.executable).parent
    failed = 0
    if not tests:
        print("FAIL typecheck: no VM tests to check")
        return 1
    for name, test in sorted(tests.items()):
        nodes = [pythonize(n) for n in test["nodes"]]
        # A test with a single node also gets it as `machine`.
        if len(nodes) == 1 and "machine" not in nodes:
            nodes.append("machine")
        script = test["testScript"]
        d = work / name
        d.mkdir(exist_ok=True)
        typed = d / "testScriptWithTypes"
        typed.write_text(
            prepend
            + "\n"
            + " ".join(f"{n}: Machine;" for n in nodes)
            + "\n\n"
            + "vlan1: VLan\n"
            + script
        )
        env = dict(os.environ, MYPYPATH=str(typing_dir))
        mypy = subprocess.run(
            [
                str(bindir / "mypy"),
                "--no-implicit-optional",
                "--pretty",
                "--no-color-output",
                "--python-version",
                PYTHON_VERSION,
                "--cache-dir",
                str(d / "mypy-cache"),
                typed.name,
            ],
            cwd=d,
            env=env,
            capture_output=True,
            text=True,
        )
        failed += report("mypy", name, mypy)
        plain = d / "test-script"
        plain.write_text(script)
        env = dict(os.environ, PYFLAKES_BUILTINS=",".join(nodes + DRIVER_SYMBOLS))
        flakes = subprocess.run(
            [str(bindir / "pyflakes"), plain.name],
            cwd=d,
            env=env,
            capture_output=True,
            text=True,
        )
        failed += report("pyflakes", name, flakes)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
