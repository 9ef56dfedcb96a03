"""How `reelvec up` treats a child that dies while starting: killed by a signal, it is started once
more; exited, or killed twice, the start fails and the error shows the end of the child's log."""

import asyncio
import sys
import textwrap

import pytest

from reelvec.tools import launcher

# Serves /healthz on the port given, after printing a line; aborts (SIGABRT) while the file named
# by argv[2] holds a positive count, counting it down, and exits 3 when argv[3] says so.
CHILD = textwrap.dedent("""
    import http.server, os, sys
    print("starting up, attempt", flush=True)
    budget = int(open(sys.argv[2]).read())
    if budget > 0:
        open(sys.argv[2], "w").write(str(budget - 1))
        os.abort()
    if sys.argv[3] == "exit":
        print("the config names no such model", flush=True)
        sys.exit(3)
    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
        def log_message(self, *args):
            pass
    http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Health).serve_forever()
""")


def _stack(tmp_path, aborts: int, then: str = "serve") -> launcher.Stack:
    script, budget = tmp_path / "child.py", tmp_path / "aborts"
    script.write_text(CHILD)
    budget.write_text(str(aborts))
    port = launcher.free_port()
    stack = launcher.Stack(tmp_path / "data", launcher.free_port(), port)
    # "web" is probed over HTTP, which a few lines of standard library can answer
    stack.children = [launcher.Child("web", [sys.executable, str(script), str(port), str(budget), then], {},
                                     f"127.0.0.1:{port}")]
    return stack


async def _start(stack: launcher.Stack) -> None:
    try:
        await stack.start()
    finally:
        await stack.stop()


def test_a_child_killed_while_starting_is_started_once_more(tmp_path, capsys):
    stack = _stack(tmp_path, aborts=1)
    asyncio.run(_start(stack))
    warning = capsys.readouterr().err
    assert "web was killed by signal 6 while starting" in warning
    assert "starting up, attempt" in warning  # the end of its log comes with the warning
    assert stack.log_path(stack.children[0]).read_text().count("starting up") == 2


def test_a_child_killed_twice_while_starting_fails_the_start_and_shows_its_log(tmp_path):
    stack = _stack(tmp_path, aborts=2)
    with pytest.raises(RuntimeError, match=r"web exited with code -6 while starting") as failure:
        asyncio.run(_start(stack))
    assert "starting up, attempt" in str(failure.value)


def test_a_child_that_exits_while_starting_is_not_started_again(tmp_path):
    stack = _stack(tmp_path, aborts=0, then="exit")
    with pytest.raises(RuntimeError, match=r"web exited with code 3 while starting") as failure:
        asyncio.run(_start(stack))
    assert "the config names no such model" in str(failure.value)
    assert stack.log_path(stack.children[0]).read_text().count("starting up") == 1
