# The shared fixtures live in one plugin module; helpers are imported from tests/support/.
pytest_plugins = ["tests.support.fixtures"]
