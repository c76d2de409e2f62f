"""The manifest's platform and library versions, read cheaply, equal what the standard library says."""
import importlib.metadata
import platform

from analyzer.output import manifest


def test_platform_text_is_platform_platform():
    assert manifest._platform() == platform.platform()


def test_library_versions_are_their_distributions():
    found = manifest._dist_info_versions()
    for name in manifest.LIBRARIES:
        assert found[name] == importlib.metadata.version(name), name       # read from the folder names
        assert manifest._version(name) == importlib.metadata.version(name), name
