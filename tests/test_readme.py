import re

from conftest import REPO


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme, flags=re.S)
    test_cmds = [line.strip() for b in blocks for line in b.splitlines()
                 if "pytest" in line]
    assert test_cmds, "README has no test command"
    assert test_cmds[0] in ci, "'.ci/run' must run the README's test command verbatim"
