# The shared fixtures live in one plugin module; helpers are imported from tests/support/.
from hypothesis import settings as hypothesis_settings

pytest_plugins = ["tests.support.fixtures"]

# Property tests check results, not speed: on 2 cores shared with workers, browsers and another
# test process, one example can take longer than Hypothesis's 200 ms deadline, which would fail
# a correct test.
hypothesis_settings.register_profile("suite", deadline=None)
hypothesis_settings.load_profile("suite")
