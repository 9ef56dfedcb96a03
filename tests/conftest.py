"""REELVEC_TEST_ORDER=reverse runs the collected tests last to first: a check that no test relies
on what an earlier one left behind (`REELVEC_TEST_ORDER=reverse pytest tests/integration/...`)."""

import os


def pytest_collection_modifyitems(session, config, items):
    if os.environ.get("REELVEC_TEST_ORDER") == "reverse":
        items.reverse()
