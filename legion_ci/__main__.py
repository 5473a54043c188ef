from legion_ci.cli import run

run()
