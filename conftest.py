"""Root wiring (the only place pytest allows `pytest_plugins`): the stage1_5 gate plugin
(--stage1-5-config, --gate-accept, session fixtures; see fixtures/plugin.py) and pytester, with which
tests/test_gates_*.py run the gate suite in a subprocess."""

pytest_plugins = ["fixtures.plugin", "pytester"]
